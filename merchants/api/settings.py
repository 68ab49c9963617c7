"""The merchant's pending window (SPEC 2, Pending points): `GET`/`PUT /api/v1/pending-window`,
scope `rules:write` (it is part of how the merchant's purchases earn). Thin: validate with
`merchants.schemas`, call `merchants.services`, serialise with the response schema. A PUT sets
a value, so repeating it changes nothing more."""

from __future__ import annotations

from typing import Any

from coalition import clock
from coalition.extensions import db
from coalition.web.access import principal, require
from coalition.web.api import blueprint
from merchants import services
from merchants.schemas import PendingWindowIn, PendingWindowOut

bp = blueprint("merchant_settings", __name__, "The merchant's pending window")


def _merchant_id() -> int:
    merchant_id = principal().merchant_id
    if merchant_id is None:  # `require` lets only merchant tokens in
        raise AssertionError("a merchant route ran without a merchant")
    return merchant_id


def _body(window: services.PendingWindow) -> dict[str, Any]:
    return {
        "pending_days": window.pending_days,
        "bounds": list(window.bounds),
        "in_force": window.in_force,
    }


@bp.route("/pending-window", methods=["GET"])
@require("rules:write", kinds=("merchant",))
@bp.response(200, PendingWindowOut)
def get_pending_window() -> Any:
    """The days this merchant's purchases stay pending before their points can be spent."""
    return _body(services.pending_window(db.session(), _merchant_id(), clock.utcnow()))


@bp.route("/pending-window", methods=["PUT"])
@require("rules:write", kinds=("merchant",))
@bp.arguments(PendingWindowIn)
@bp.response(200, PendingWindowOut)
@bp.alt_response(422, description="Outside the operator's bounds (`invalid_request`).")
def put_pending_window(window: dict[str, Any]) -> Any:
    """Set the pending window: purchases recorded from now on are pending that many days (their
    points show in the member's balance but cannot be spent until confirmed); 0 for none."""
    session = db.session()
    done = services.set_pending_days(
        session, _merchant_id(), window["pending_days"], now=clock.utcnow()
    )
    session.commit()
    return _body(done)
