"""Webhooks' tests: a real local HTTPS receiver (tests/webhooks/receiver.py) whose certificate
comes from one throw-away CA per run, and the test app set to trust that CA and to allow
loopback addresses (`WEBHOOKS_ALLOW_PRIVATE`, `WEBHOOKS_CA_BUNDLE`), as a developer's would."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import trustme
from flask import Flask

from coalition import clock
from tests.webhooks.engine_helpers import T0, Clock, SigningReceiver


@pytest.fixture(scope="session")
def webhook_ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, str]:
    """The run's CA and a PEM file trusting it."""
    ca = trustme.CA()
    bundle = tmp_path_factory.mktemp("webhook-ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    return ca, str(bundle)


@pytest.fixture
def webhook_settings(webhook_ca: tuple[trustme.CA, str]) -> dict[str, str]:
    """Settings for an app built with `make_app` that delivers to the test receivers."""
    return {
        "WEBHOOKS_ALLOW_PRIVATE": "true",
        "WEBHOOKS_CA_BUNDLE": webhook_ca[1],
        "WEBHOOKS_TIMEOUT_SECONDS": "2",
    }


@pytest.fixture
def webhook_app(
    app: Flask, webhook_ca: tuple[trustme.CA, str], monkeypatch: pytest.MonkeyPatch
) -> Flask:
    """The run's app, delivering to loopback receivers signed by the run's CA."""
    assert Path(webhook_ca[1]).is_file()
    monkeypatch.setitem(app.config, "WEBHOOKS_ALLOW_PRIVATE", True)
    monkeypatch.setitem(app.config, "WEBHOOKS_CA_BUNDLE", webhook_ca[1])
    monkeypatch.setitem(app.config, "WEBHOOKS_TIMEOUT_SECONDS", 2.0)
    return app


@pytest.fixture
def receivers(webhook_ca: tuple[trustme.CA, str]) -> Iterator[list[SigningReceiver]]:
    """Start receivers with `receivers.append(SigningReceiver(...).start())`, or use
    `receiver`. After the test, every request each got is verified with the Standard Webhooks
    library against every secret it was told to expect (QUALITY W1)."""
    started: list[SigningReceiver] = []
    yield started
    try:
        for receiver in started:
            receiver.verify_all()
    finally:
        for receiver in started:
            receiver.stop()


@pytest.fixture
def receiver(
    receivers: list[SigningReceiver], webhook_ca: tuple[trustme.CA, str]
) -> SigningReceiver:
    started = SigningReceiver(ca=webhook_ca[0]).start()
    receivers.append(started)
    return started


@pytest.fixture
def moment(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """`coalition.clock.utcnow` at a time the test moves (starting a minute after T0)."""
    fixed = Clock(T0 + timedelta(minutes=1))
    monkeypatch.setattr(clock, "utcnow", fixed)
    return fixed
