"""A request id for every request: the caller's `X-Request-Id` when it is sane, else a new one;
set on the logs of everything the request does and echoed in the response."""

from __future__ import annotations

import re
import uuid

from flask import Flask, Response, g, request

from coalition.logs import correlation_id

_SANE = re.compile(r"^[A-Za-z0-9._-]{1,100}$")


def init_app(app: Flask) -> None:
    @app.before_request
    def _assign() -> None:
        given = request.environ.get("HTTP_X_REQUEST_ID", "")  # request.headers["X-Request-Id"]
        g.request_id = request_id = given if _SANE.fullmatch(given) else uuid.uuid4().hex
        g.request_id_token = correlation_id.set(request_id)

    @app.after_request
    def _echo(response: Response) -> Response:
        if "request_id" in g:
            response.headers["X-Request-Id"] = g.request_id
        return response

    @app.teardown_request
    def _clear(_exc: BaseException | None) -> None:
        token = g.pop("request_id_token", None)
        if token is not None:
            correlation_id.reset(token)
