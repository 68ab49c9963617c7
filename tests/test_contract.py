"""The API keeps the promises of its OpenAPI document (SPEC 3.1, QUALITY S6): Schemathesis reads
`/api/v1/openapi.json` from a live server and calls every operation with generated requests,
valid and invalid, carrying real tokens of a merchant, of a member (delegated through the
authorization-code flow, as a merchant's app gets one) and of the operator. No answer may be a
5xx, and every answer must be one the document describes (status, content type, headers and
body schema); valid requests must not be refused as malformed, invalid ones must not be
accepted. The seed is fixed, so a failure replays."""

from __future__ import annotations

import base64
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from flask import Flask
from sqlalchemy import select
from werkzeug.security import generate_password_hash

from coalition.extensions import db
from coalition.members.models import Member
from coalition.members.services import create_member
from coalition.oauth import clients, scopes
from merchants.services import create_merchant
from tests import factories as f
from tests.factories import T0
from tests.oauth_helpers import REDIRECT_URI, live_server, sign_in_and_answer
from tests.stripe_standin import stripe_for

pytestmark = pytest.mark.contract

ROOT = Path(__file__).resolve().parent.parent
SEED = 20261128
# Per operation; enough to reach every field's edges in the coverage phase and some random
# bodies beyond, while the run stays within a couple of minutes on two cores.
MAX_EXAMPLES = int(os.environ.get("CONTRACT_MAX_EXAMPLES", "50"))
EMAIL, PASSWORD = "ada@example.org", "correct horse battery staple"


@dataclass
class Coalition:
    url: str
    merchant: str  # the public id of the merchant whose tokens the run uses
    card: str  # the card number of the member who delegated its token
    tokens: dict[str, str]
    # The run's own OAuth clients: the till and the member's app (whose id a consent's history
    # shows, so the run learns it and could revoke it as the operator).
    clients: tuple[str, ...] = ()


def _client_token(url: str, credentials: dict[str, str], scope: str) -> str:
    with OAuth2Session(credentials["client_id"], credentials["client_secret"]) as software:
        token = software.fetch_token(
            f"{url}/oauth/token", grant_type="client_credentials", scope=scope
        )
    return str(token["access_token"])


def _member_token(url: str, app_client: dict[str, str]) -> str:
    """The member signs in and consents in a browser; the app swaps the code (PKCE S256). Not
    `account:delete`: the run keeps its member (`DELETE /api/v1/me` answers 403)."""
    with OAuth2Session(
        app_client["client_id"],
        app_client["client_secret"],
        scope="balance:read redeem consents:write",
        redirect_uri=REDIRECT_URI,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_post",
    ) as software:
        verifier = generate_token(48)
        authorization, _state = software.create_authorization_url(
            f"{url}/oauth/authorize", code_verifier=verifier
        )
        with requests.Session() as browser:
            back = sign_in_and_answer(browser, authorization, EMAIL, PASSWORD)
        token = software.fetch_token(
            f"{url}/oauth/token", authorization_response=back, code_verifier=verifier
        )
    return str(token["access_token"])


@pytest.fixture
def coalition(committed: Flask, make_app) -> Iterator[Coalition]:
    """A merchant with a member who has points and a statement, on a live server."""
    with committed.app_context():
        session = db.session()
        bakery_id, bakery = create_merchant(session, "Bakery", now=T0)
        member_id, _ = create_member(
            session, email=EMAIL, password_hash=generate_password_hash(PASSWORD), now=T0
        )
        card = session.execute(
            select(Member.card_number).where(Member.id == member_id)
        ).scalar_one()
        f.purchase(session, member_id, bakery_id, 500)
        f.statement(session, bakery_id)
        till = f.client(session, bakery_id)
        app_client = clients.create_client(
            session,
            name="Bakery Rewards",
            merchant_id=bakery_id,
            scopes=scopes.MEMBER_SCOPES,
            redirect_uris=[REDIRECT_URI],
            now=T0,
        )
        operator = f.client(session, None, "operator")
        session.commit()
    app = make_app()
    # Stripe, for the account links: the stand-in the payment tests use.
    with stripe_for(app), live_server(app) as url:
        tokens = {
            "merchant": _client_token(url, till, f.ALL_MERCHANT_SCOPES),
            "operator": _client_token(url, operator, "operator"),
            "member": _member_token(url, app_client),
            # The OAuth endpoints' client authentication: the till's id and secret.
            "client": "Basic "
            + base64.b64encode(f"{till['client_id']}:{till['client_secret']}".encode()).decode(),
        }
        yield Coalition(url, bakery, card, tokens, (till["client_id"], app_client["client_id"]))


def schemathesis_command(url: str, report: Path) -> list[str]:
    return [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{url}/api/v1/openapi.json",
        f"--seed={SEED}",
        f"--max-examples={MAX_EXAMPLES}",
        "--phases=examples,coverage,fuzzing",
        "--checks=all",
        "--workers=1",
        "--continue-on-failure",
        "--generation-database=none",
        "--request-timeout=30",
        "--no-color",
        "--report=json",
        f"--report-json-path={report}",
        # More, for a developer chasing a failure: e.g. `--include-path=/api/v1/purchases`.
        *shlex.split(os.environ.get("CONTRACT_SCHEMATHESIS_ARGS", "")),
    ]


def test_every_answer_is_one_the_openapi_document_promises(
    coalition: Coalition, tmp_path: Path, record_property
) -> None:
    report = tmp_path / "schemathesis.json"
    command = schemathesis_command(coalition.url, report)
    environment = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.contract_hooks",
        "COALITION_CONTRACT_TOKENS": json.dumps(coalition.tokens),
        "COALITION_CONTRACT_MERCHANT": coalition.merchant,
        "COALITION_CONTRACT_CARD": coalition.card,
        "COALITION_CONTRACT_CLIENTS": ",".join(coalition.clients),
        "PYTHONPATH": str(ROOT),
    }
    # Run from tmp_path: Schemathesis keeps a cache of answers in its working directory, and a
    # cache left by an earlier run would make this one depend on it.
    run = subprocess.run(
        command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=900
    )
    (tmp_path / "schemathesis.out").write_text(run.stdout + run.stderr)
    assert report.exists(), run.stdout + run.stderr
    figures = json.loads(report.read_text())
    failures = {group["title"]: group["count"] for group in figures["failures"]}
    record_property(
        "summary",
        f"S6 schemathesis: {figures['operations']['tested']} operations, "
        f"{figures['test_cases']['generated']} cases, failures by check {failures or 'none'} "
        f"(seed {SEED}, {MAX_EXAMPLES} examples per operation; "
        f"{shlex.join(command[1:4])} ...)",
    )
    assert figures["errors"] == [], run.stdout
    assert run.returncode == 0, run.stdout
    # The run called every operation as someone it could act for, to the end.
    for kind, path in (
        ("merchant", "/api/v1/transactions"),
        ("member", "/api/v1/me"),
        ("operator", "/api/v1/ops/liability"),
    ):
        answer = requests.get(
            coalition.url + path, headers={"Authorization": f"Bearer {coalition.tokens[kind]}"}
        )
        assert answer.status_code == 200, (kind, answer.text)
