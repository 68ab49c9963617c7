"""Liveness and readiness. `/healthz` does no I/O (the process answers); `/readyz` checks what
a request needs: the database and, when configured, Redis."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify
from sqlalchemy import text

from coalition.extensions import db
from coalition.jobs import redis_connection
from coalition.web.access import public

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@public()
def healthz() -> Response:
    return jsonify(status="ok")


@bp.get("/readyz")
@public()
def readyz() -> Response:
    checks: dict[str, str] = {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # any failure means not ready; say which
        current_app.logger.warning("readiness: database unavailable", exc_info=exc)
        checks["database"] = "unavailable"
    finally:
        db.session.rollback()
    if current_app.config["REDIS_URL"]:
        try:
            redis_connection(current_app).ping()
            checks["redis"] = "ok"
        except Exception as exc:
            current_app.logger.warning("readiness: redis unavailable", exc_info=exc)
            checks["redis"] = "unavailable"
    else:
        checks["redis"] = "not configured (jobs run in-process)"
    ready = all(v != "unavailable" for v in checks.values())
    if ready:
        return jsonify(status="ready", checks=checks)
    body = {
        "type": "https://coalition.dev/problems/not-ready",
        "title": "Not ready",
        "status": 503,
        "detail": "a dependency is unavailable: "
        + ", ".join(k for k, v in checks.items() if v == "unavailable"),
        "code": "not_ready",
        "checks": checks,
    }
    response = jsonify(body)
    response.status_code = 503
    response.mimetype = "application/problem+json"
    return response
