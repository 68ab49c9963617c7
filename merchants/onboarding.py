"""Merchant applications (public), and the operator's approval, suspension, listing and client
creation (SPEC 3.3, 3.5)."""

from __future__ import annotations

from typing import Any

from flask import Response, json
from marshmallow import Schema, fields, validate
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from werkzeug.security import generate_password_hash

from coalition import clock, tenancy
from coalition.database import table
from coalition.errors import CoalitionError, NotFound
from coalition.extensions import db
from coalition.oauth import clients as oauth_clients
from coalition.oauth.models import OAuthClient
from coalition.oauth.scopes import ALLOWED
from coalition.web.access import public, require
from coalition.web.api import (
    EMAIL,
    HTTP_URL,
    PageArgs,
    Strict,
    blueprint,
    page_schema,
    paginate,
    pattern,
)
from merchants import services
from merchants.models import MERCHANT_STATUSES, Merchant

bp = blueprint("onboarding", __name__, "Merchant applications and the operator's merchants")
merchants = table(Merchant)
clients = table(OAuthClient)


class EmailTaken(CoalitionError):
    status, code, title = 409, "email_taken", "Email already registered"


class ApplicationIn(Strict):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    email = fields.String(
        required=True,
        validate=[validate.Length(max=320), pattern(EMAIL, "Not a valid email address.")],
    )
    country = fields.String(
        required=True, validate=validate.Regexp(r"^[A-Z]{2}$", error="an ISO 3166 code: DE, FR")
    )
    category = fields.String(required=True, validate=validate.Length(min=1, max=80))
    website = fields.String(
        allow_none=True,
        validate=[validate.Length(max=500), pattern(f"^({HTTP_URL[1:-1]})?$", "Not a valid URL.")],
        metadata={"description": "an http(s) URL; empty, null or left out: none"},
    )
    contact_name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    password = fields.String(
        required=True, load_only=True, validate=validate.Length(min=10, max=200)
    )


class ApplicationOut(Schema):
    id = fields.String()
    status = fields.String()


class MerchantOut(Schema):
    id = fields.String()
    name = fields.String()
    status = fields.String()
    email = fields.String(allow_none=True)
    country = fields.String(allow_none=True)
    category = fields.String(allow_none=True)
    website = fields.String(allow_none=True)
    contact_name = fields.String(allow_none=True)
    base_rate = fields.String()
    created_at = fields.DateTime()
    approved_at = fields.DateTime(allow_none=True)
    suspended_at = fields.DateTime(allow_none=True)


class MerchantListArgs(PageArgs):
    status = fields.String(validate=validate.OneOf(MERCHANT_STATUSES))


class ClientIn(Strict):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    scopes = fields.List(
        fields.String(validate=validate.OneOf(sorted(ALLOWED["merchant"]))),
        required=True,
        validate=validate.Length(min=1, max=20),
    )
    redirect_uris = fields.List(
        fields.String(validate=[validate.Length(max=500), pattern(HTTP_URL, "Not a valid URL.")]),
        load_default=list,
        validate=validate.Length(max=oauth_clients.MAX_REDIRECT_URIS),
    )


class ClientOut(Schema):
    client_id = fields.String()
    client_secret = fields.String()
    scopes = fields.List(fields.String())


def _merchant(row: Any) -> dict[str, Any]:
    return {
        "id": row.public_id,
        "name": row.name,
        "status": row.status,
        "email": row.email,
        "country": row.country,
        "category": row.category,
        "website": row.website,
        "contact_name": row.contact_name,
        "base_rate": str(row.base_rate),
        "created_at": row.created_at,
        "approved_at": row.approved_at,
        "suspended_at": row.suspended_at,
    }


def _created(body: dict[str, Any]) -> Response:
    return Response(json.dumps(body), status=201, mimetype="application/json")


@bp.route("/merchant-applications", methods=["POST"])
@public("RATE_LIMIT_SIGNUP")
@bp.arguments(ApplicationIn)
@bp.response(201, ApplicationOut)
@bp.alt_response(409, description="A merchant applied with this email (`email_taken`).")
def apply(application: dict[str, Any]) -> Any:
    """Apply to join the coalition. The merchant waits in `pending` until the operator
    approves it."""
    session = db.session()
    email = application["email"].lower()
    if session.execute(select(merchants.c.id).where(merchants.c.email == email)).first():
        raise EmailTaken("a merchant with this email has already applied")
    savepoint = session.begin_nested()
    try:
        _, public_id = services.create_merchant(
            session,
            application["name"],
            status="pending",
            now=clock.utcnow(),
            details={
                "email": email,
                "country": application["country"],
                "category": application["category"],
                "website": application.get("website") or None,
                "contact_name": application["contact_name"],
                "password_hash": generate_password_hash(application["password"]),
            },
        )
        savepoint.commit()
    except IntegrityError as exc:  # the same email, applied at the same moment
        savepoint.rollback()
        raise EmailTaken("a merchant with this email has already applied") from exc
    session.commit()
    return {"id": public_id, "status": "pending"}


@bp.route("/ops/merchants", methods=["GET"])
@require("operator", kinds=("operator",))
@bp.arguments(MerchantListArgs, location="query")
@bp.response(200, page_schema(MerchantOut, "MerchantPage"))
def list_merchants(args: dict[str, Any]) -> Any:
    """Every merchant, newest first; `status` filters (pending applications to review...)."""
    query = select(merchants)
    if args.get("status"):
        query = query.where(merchants.c.status == args["status"])
    return paginate(query, merchants.c.id, args, _merchant)


@bp.route("/ops/merchants/<merchant_id>", methods=["GET"])
@require("operator", kinds=("operator",))
@bp.response(200, MerchantOut)
def get_merchant(merchant_id: str) -> Any:
    """One merchant, whatever its status: its application's details and its dates."""
    row = db.session.execute(
        select(merchants).where(merchants.c.public_id == merchant_id)
    ).one_or_none()
    if row is None:
        raise NotFound("no such merchant")
    return _merchant(row)


@bp.route("/ops/merchants/<merchant_id>/approve", methods=["POST"])
@require("operator", kinds=("operator",))
@bp.response(200, ApplicationOut)
def approve(merchant_id: str) -> Any:
    """Let the merchant in: its clients start working."""
    result = services.approve_merchant(db.session(), merchant_id, clock.utcnow())
    db.session.commit()
    return result


@bp.route("/ops/merchants/<merchant_id>/suspend", methods=["POST"])
@require("operator", kinds=("operator",))
@bp.response(200, ApplicationOut)
def suspend(merchant_id: str) -> Any:
    """Stop the merchant: every token of its clients is refused from this moment."""
    result = services.suspend_merchant(db.session(), merchant_id, clock.utcnow())
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
    merchant = session.execute(
        select(merchants.c.id, merchants.c.status).where(merchants.c.public_id == merchant_id)
    ).one_or_none()
    if merchant is None:
        raise NotFound("no such merchant")
    made = oauth_clients.create_client(
        session,
        name=client["name"],
        merchant_id=merchant.id,
        scopes=set(client["scopes"]),
        redirect_uris=client["redirect_uris"],
        now=clock.utcnow(),
    )
    if merchant.status != "active":
        with tenancy.acting_as(tenancy.SYSTEM, session):
            session.execute(
                update(clients)
                .where(clients.c.client_id == made["client_id"])
                .values(disabled=True)
            )
    session.commit()
    return made
