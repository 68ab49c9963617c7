"""Two things Flask does on every request, done only where they matter.

- The signed-cookie session: Flask builds its signing serializer (and parses the Cookie header)
  before it looks for a session cookie, on every request, though no API call sends one. Here a
  request without a Cookie header gets the same empty session without either.
- `ensure_sync`: Flask asks `inspect` whether each hook and view is a coroutine function, about
  ten times a request. The answer never changes for a function, so it is remembered.

Measured in docs/benchmarks.md ("Issue 11: the last levers (session 2)")."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import Flask, Request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface


class CookieSessions(SecureCookieSessionInterface):
    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if "HTTP_COOKIE" in request.environ:
            return super().open_session(app, request)
        # What the parent answers without a cookie: no session without a secret key (Flask then
        # uses its null session), else an empty one.
        return self.session_class() if app.secret_key else None


def init_app(app: Flask) -> None:
    app.session_interface = CookieSessions()
    ensure_sync: Callable[[Callable[..., Any]], Callable[..., Any]] = app.ensure_sync
    # Bounded: a bound method is a new object on each access, and is remembered by equality.
    app.ensure_sync = functools.lru_cache(maxsize=512)(ensure_sync)  # type: ignore[method-assign]
