"""gunicorn's access log, each field worked out only when the format names it.

gunicorn's own `Logger.access` builds every field it knows for every request: a timestamp, the
user of a Basic `Authorization` header, every request and response header and every WSGI
environ variable, each copied with its quotes escaped, to fill a format that names six of
them. That cost a worker about 0.1 ms a request, a quarter of `/healthz` (docs/benchmarks.md).
`AccessLog` writes the same line from the same format: `config/gunicorn.py` names it as
gunicorn's `logger_class`."""

from __future__ import annotations

import os
import traceback
from datetime import timedelta
from typing import Any

from gunicorn.glogging import Logger


class AccessLog(Logger):
    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: timedelta) -> None:
        if not self.access_log_enabled:
            return
        try:
            fields = Fields(self, resp, req, environ, request_time)
            self.access_log.info(self.cfg.access_log_format, fields)
        except Exception:
            self.error(traceback.format_exc())


def _escaped(value: Any) -> Any:
    return value.replace('"', '\\"') if isinstance(value, str) else value


def _last(pairs: Any, name: str) -> Any:
    """The value of the last pair named `name` (any case), as gunicorn's dict of them keeps."""
    found = None
    for key, value in pairs:
        if key.lower() == name:
            found = (value,)
    return found


class Fields(dict[str, Any]):
    """What gunicorn's `SafeAtoms(logger.atoms(...))` answers for a key, computed on demand.
    A dict (not empty) because `logging` takes a lone non-empty mapping as the format's
    arguments."""

    def __init__(
        self, logger: Logger, resp: Any, req: Any, environ: dict[str, Any], spent: timedelta
    ) -> None:
        super().__init__(_=None)
        self.logger, self.resp, self.req, self.environ, self.spent = (
            logger,
            resp,
            req,
            environ,
            spent,
        )

    def __getitem__(self, key: str) -> Any:
        if key.startswith("{"):
            return self._named(key.lower())
        make = _ATOMS.get(key)
        if make is None:
            return "-"
        return _escaped(make(self))

    def _named(self, key: str) -> Any:
        # "{name}i": a request header, "{name}o": a response header, "{name}e": environ.
        name, kind = key[1:-2], key[-2:]
        if kind == "}i":
            headers = self.req.headers if hasattr(self.req, "headers") else self.req
            pairs = headers.items() if hasattr(headers, "items") else headers
        elif kind == "}o":
            headers = self.resp.headers
            pairs = headers.items() if hasattr(headers, "items") else headers
        elif kind == "}e":
            pairs = self.environ.items()
        else:
            return "-"
        found = _last(pairs, name)
        return "-" if found is None else _escaped(found[0])

    def _status(self) -> Any:
        status = self.resp.status
        return status.split(None, 1)[0] if isinstance(status, str) else status


def _sent(fields: Fields) -> Any:
    sent = getattr(fields.resp, "sent", None)
    return (sent is not None and str(sent)) or "-"


_ATOMS: dict[str, Any] = {
    "h": lambda f: f.environ.get("REMOTE_ADDR", "-"),
    "l": lambda f: "-",
    "u": lambda f: f.logger._get_user(f.environ) or "-",
    "t": lambda f: f.logger.now(),
    "r": lambda f: " ".join(
        str(f.environ[key]) for key in ("REQUEST_METHOD", "RAW_URI", "SERVER_PROTOCOL")
    ),
    "s": lambda f: f._status(),
    "m": lambda f: f.environ.get("REQUEST_METHOD"),
    "U": lambda f: f.environ.get("PATH_INFO"),
    "q": lambda f: f.environ.get("QUERY_STRING"),
    "H": lambda f: f.environ.get("SERVER_PROTOCOL"),
    "b": _sent,
    "B": lambda f: getattr(f.resp, "sent", None),
    "f": lambda f: f.environ.get("HTTP_REFERER", "-"),
    "a": lambda f: f.environ.get("HTTP_USER_AGENT", "-"),
    "T": lambda f: f.spent.seconds,
    "D": lambda f: (f.spent.seconds * 1000000) + f.spent.microseconds,
    "M": lambda f: (f.spent.seconds * 1000) + int(f.spent.microseconds / 1000),
    "L": lambda f: f"{f.spent.seconds:d}.{f.spent.microseconds:06d}",
    "p": lambda f: f"<{os.getpid()}>",
}
