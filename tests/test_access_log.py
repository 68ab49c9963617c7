"""The access log writes what gunicorn's own logger writes, for any format."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from gunicorn.config import Config
from gunicorn.glogging import Logger

import config.gunicorn as defaults
from coalition.access_log import AccessLog

FORMATS = [
    defaults.access_log_format,
    Config().access_log_format,  # gunicorn's default
    '%(t)s %(u)s %(l)s %(m)s %(U)s?%(q)s %(H)s %(B)s %(f)s "%(a)s" %(T)s %(D)s %(L)s',
    "%(s)s %({X-Request-Id}o)s %({user-agent}i)s %({raw_uri}e)s %({missing}i)s %(z)s %(p)s",
    "%({remote_addr}e)s %({content-type}o)s %({}x)s",
]


def exchange(sent: int | None) -> tuple[object, object, dict[str, str], timedelta]:
    resp = SimpleNamespace(
        status="201 CREATED",
        headers=[
            ("Content-Type", "application/json"),
            ("X-Request-Id", 'a"b'),
            ("x-request-id", "c"),
        ],
        sent=sent,
    )
    req = SimpleNamespace(headers=[("USER-AGENT", 'wrk "quoted"'), ("HOST", "example")])
    environ = {
        "REMOTE_ADDR": "10.0.0.7",
        "REQUEST_METHOD": "POST",
        "RAW_URI": '/api/v1/purchases?x="1"',
        "PATH_INFO": "/api/v1/purchases",
        "QUERY_STRING": 'x="1"',
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_USER_AGENT": 'wrk "quoted"',
        "HTTP_AUTHORIZATION": "Basic dXNlcjpwYXNz",
    }
    return resp, req, environ, timedelta(seconds=2, microseconds=345678)


def written(logger_class: type[Logger], log: Path, fmt: str, sent: int | None) -> str:
    cfg = Config()
    cfg.set("accesslog", str(log))
    cfg.set("access_log_format", fmt)
    logger = logger_class(cfg)
    logger.now = lambda: "[28/Nov/2026:15:00:00 +0000]"  # type: ignore[method-assign]
    logger.access(*exchange(sent))
    for handler in logger.access_log.handlers:
        handler.close()
    return log.read_text()


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("sent", [123, None])
def test_the_same_line_as_gunicorn(tmp_path: Path, fmt: str, sent: int | None) -> None:
    ours = written(AccessLog, tmp_path / "ours.log", fmt, sent)
    theirs = written(Logger, tmp_path / "theirs.log", fmt, sent)
    assert ours == theirs
    assert ours.count("\n") == 1


def test_serve_uses_it() -> None:
    assert Config().logger_class is Logger
    cfg = Config()
    cfg.set("logger_class", defaults.logger_class)
    assert cfg.logger_class is AccessLog
