"""Browser tests (SPEC 3.9): the app served on the test PostgreSQL database in a thread, and
Debian's Chromium driven by Playwright (`playwright install` cannot download here).

These tests commit for real (the `committed` fixture empties every table afterwards), as a live
server's connections cannot see a test's uncommitted rows. Chromium missing is a failure, never
a skip: `.ci/run` installs it."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from axe_playwright_python.sync_playwright import Axe
from flask import Flask
from playwright.sync_api import Page
from werkzeug.serving import make_server

# Chromium's own calls home are refused by this network; without these flags it retries them.
GRAVE = ("serious", "critical")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("Chromium is not installed: `apt-get install chromium` (.ci/run does)")
    return {**browser_type_launch_args, "executable_path": chromium, "args": CHROMIUM_ARGS}


@pytest.fixture
def live_app(committed: Flask) -> Iterator[Flask]:
    """The test app, whose rows are committed; a test arranges them inside `app_context()`."""
    yield committed


@pytest.fixture
def live_url(live_app: Flask) -> Iterator[str]:
    """The app on a free local port, one thread per request, for the browser and for HTTP."""
    server = make_server("127.0.0.1", 0, live_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


@pytest.fixture
def accessible(record_property: Any) -> Callable[[Page], list[str]]:
    """Runs axe-core on the page shown; returns its serious and critical violations, and keeps a
    line per page for the run's "figures" summary."""
    axe = Axe()

    def check(page: Page) -> list[str]:
        results = axe.run(page)
        found = results.response["violations"]
        grave = [f"{v['id']} ({v['impact']}): {v['help']}" for v in found if v["impact"] in GRAVE]
        path = urlsplit(page.url).path
        record_property(
            "summary", f"axe {path}: {len(found)} violations, {len(grave)} serious or critical"
        )
        return grave

    return check
