"""`make screenshots`: the README's picture of each face, remade from the demo.

Builds a demo coalition in a scratch SQLite database (as `make run` does), serves it with
`coalition serve` on a spare port, signs in to each face with the credentials the demo printed,
and saves a PNG of each face's first page next to this script, with Debian's Chromium driven by
Playwright."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
PORT = int(os.environ.get("SCREENSHOTS_PORT", "8799"))
URL = f"http://127.0.0.1:{PORT}"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _coalition(environ: dict[str, str], *args: str) -> None:
    subprocess.run(
        [str(BIN / "coalition"), *args], env=environ, check=True, stdout=subprocess.DEVNULL
    )


def _wait_until_up(server: subprocess.Popen[bytes]) -> None:
    for _ in range(100):
        if server.poll() is not None:
            raise SystemExit("coalition serve stopped before it answered")
        try:
            urllib.request.urlopen(URL + "/healthz", timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"coalition serve did not answer on {URL}")


def _sign_in(page: Page, path: str, email: str, password: str) -> None:
    page.goto(URL + path)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def _shoot(page: Page, name: str) -> None:
    path = HERE / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"  {path.relative_to(HERE.parent.parent)}")


def main() -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("Chromium is missing: apt-get install chromium")
    with tempfile.TemporaryDirectory() as scratch:
        credentials_path = Path(scratch) / "credentials.json"
        environ = {
            **os.environ,
            "COALITION_ENV": "development",
            "DATABASE_URL": f"sqlite:///{scratch}/coalition.db",
            "SECRET_KEY": "screenshots",
            "RATELIMIT_ENABLED": "false",
            "LOG_LEVEL": "WARNING",
        }
        environ.pop("REDIS_URL", None)
        _coalition(environ, "db", "upgrade")
        _coalition(environ, "demo", "--members", "80", "--credentials", str(credentials_path))
        credentials = json.loads(credentials_path.read_text())
        server = subprocess.Popen(
            [str(BIN / "coalition"), "serve", "--port", str(PORT), "--workers", "1"], env=environ
        )
        try:
            _wait_until_up(server)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
                print("Screenshots:")
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                page.goto(URL + "/")
                _shoot(page, "landing")
                for key, name in (
                    ("member_sign_in", "member"),
                    ("merchant_sign_in", "portal"),
                    ("staff_sign_in", "ops"),
                ):
                    if key not in credentials:
                        continue
                    face = browser.new_page(viewport={"width": 1280, "height": 800})
                    who = credentials[key]
                    _sign_in(face, who["url"], who["email"], who["password"])
                    _shoot(face, name)
                    face.close()
                phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
                who = credentials["member_sign_in"]
                _sign_in(phone, who["url"], who["email"], who["password"])
                _shoot(phone, "member-phone")
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
