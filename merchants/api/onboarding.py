"""Merchant applications (public), and the operator's approval, suspension, listing and client
creation (SPEC 3.3, 3.5). Thin: validate with `merchants.schemas`, call `merchants.services` or
`merchants.reads`, serialise with the response schema."""

from __future__ import annotations

from typing import Any

from werkzeug.security import generate_password_hash

from coalition import clock
from coalition.extensions import db
from coalition.web.access import operator_actor, public, require
from coalition.web.api import blueprint, page_schema, paginate
from merchants import reads, services
from merchants.schemas import (
    ApplicationIn,
    ApplicationOut,
    ClientIn,
    ClientOut,
    MerchantListArgs,
    MerchantOut,
)

bp = blueprint("onboarding", __name__, "Merchant applications and the operator's merchants")


@bp.route("/merchant-applications", methods=["POST"])
@public("RATE_LIMIT_SIGNUP")
@bp.arguments(ApplicationIn)
@bp.response(201, ApplicationOut)
@bp.alt_response(409, description="A merchant applied with this email (`email_taken`).")
def apply(application: dict[str, Any]) -> Any:
    """Apply to join the coalition. The merchant waits in `pending` until the operator
    approves it."""
    session = db.session()
    standing = services.apply(
        session,
        name=application["name"],
        email=application["email"],
        country=application["country"],
        category=application["category"],
        website=application.get("website") or None,
        contact_name=application["contact_name"],
        password_hash=generate_password_hash(application["password"]),
        now=clock.utcnow(),
    )
    session.commit()
    return standing


@bp.route("/ops/merchants", methods=["GET"])
@require("operator", kinds=("operator",))
@bp.arguments(MerchantListArgs, location="query")
@bp.response(200, page_schema(MerchantOut, "MerchantPage"))
def list_merchants(args: dict[str, Any]) -> Any:
    """Every merchant, newest first; `status` filters (pending applications to review...)."""
    query = reads.merchant_list(args.get("status"))
    return paginate(query, reads.merchants.c.id, args, reads.merchant_view)


@bp.route("/ops/merchants/<merchant_id>", methods=["GET"])
@require("operator", kinds=("operator",))
@bp.response(200, MerchantOut)
def get_merchant(merchant_id: str) -> Any:
    """One merchant, whatever its status: its application's details and its dates."""
    return reads.merchant(db.session(), merchant_id)


@bp.route("/ops/merchants/<merchant_id>/approve", methods=["POST"])
@require("operator", kinds=("operator",))
@bp.response(200, ApplicationOut)
def approve(merchant_id: str) -> Any:
    """Let the merchant in: its clients start working."""
    result = services.approve_merchant(
        db.session(), merchant_id, clock.utcnow(), actor=operator_actor()
    )
    db.session.commit()
    return result


@bp.route("/ops/merchants/<merchant_id>/suspend", methods=["POST"])
@require("operator", kinds=("operator",))
@bp.response(200, ApplicationOut)
def suspend(merchant_id: str) -> Any:
    """Stop the merchant: every token of its clients is refused from this moment."""
    result = services.suspend_merchant(
        db.session(), merchant_id, clock.utcnow(), actor=operator_actor()
    )
    db.session.commit()
    return result


@bp.route("/ops/merchants/<merchant_id>/clients", methods=["POST"])
@require("operator", kinds=("operator",))
@bp.arguments(ClientIn)
@bp.response(201, ClientOut)
def create_client(client: dict[str, Any], merchant_id: str) -> Any:
    """A new OAuth client of the merchant (till, e-shop, app). The secret is shown only here.
    A client of a merchant that is not active is created switched off."""
    session = db.session()
    made = services.create_client(
        session,
        merchant_id,
        name=client["name"],
        scopes=client["scopes"],
        redirect_uris=client["redirect_uris"],
        now=clock.utcnow(),
        actor=operator_actor(),
    )
    session.commit()
    return made
