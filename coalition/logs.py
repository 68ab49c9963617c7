"""Structured logs: one JSON object a line on stderr, each carrying the request id (or job id) of
the work that wrote it, so one request can be followed through the web tier, the jobs and the
database errors it caused."""

from __future__ import annotations

import contextvars
import logging
import sys

from pythonjsonlogger.json import JsonFormatter

# Set per request (coalition.request_ids) or per job (coalition.jobs); "-" outside both.
correlation_id: contextvars.ContextVar[str] = contextvars.ContextVar("correlation_id", default="-")


class _CorrelationFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = correlation_id.get()
        return True


def configure(level: str = "INFO") -> None:
    """Route every logger through one JSON handler. Safe to call more than once."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_coalition", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._coalition = True  # type: ignore[attr-defined]
    handler.addFilter(_CorrelationFilter())
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(request_id)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    )
    root.addHandler(handler)
    root.setLevel(level)
