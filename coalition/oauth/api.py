"""The operator's client management over the API: rotate a client's secret (the old one keeps
working for a grace period) and revoke a client."""

from __future__ import annotations

from typing import Any

from coalition import clock
from coalition.extensions import db
from coalition.oauth import clients
from coalition.oauth.schemas import RevokedClient, RotatedSecret
from coalition.web.access import operator_actor, require
from coalition.web.api import blueprint

bp = blueprint("clients", __name__, "OAuth clients: secret rotation and revocation")


@bp.route("/ops/clients/<string:client_id>/rotate-secret", methods=["POST"])
@bp.response(201, RotatedSecret)
@bp.alt_response(404, description="No such client.")
@bp.alt_response(409, description="The client is revoked.")
@require("operator", kinds=("operator",))
def rotate_client_secret(client_id: str) -> dict[str, Any]:
    """Give a client a new secret; the previous one keeps working for 24 hours."""
    rotated = clients.rotate_secret(db.session(), client_id, clock.utcnow(), actor=operator_actor())
    db.session.commit()
    return rotated


@bp.route("/ops/clients/<string:client_id>/revoke", methods=["POST"])
@bp.response(200, RevokedClient)
@bp.alt_response(404, description="No such client.")
@require("operator", kinds=("operator",))
def revoke_client(client_id: str) -> dict[str, Any]:
    """Revoke a client for good, with every token it holds. Revoking it again changes
    nothing."""
    revoked = clients.revoke_client(db.session(), client_id, clock.utcnow(), actor=operator_actor())
    db.session.commit()
    return revoked
