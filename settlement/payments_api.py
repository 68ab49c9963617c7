"""The operator's payments (SPEC 3.5, 3.7): a Stripe onboarding link for a merchant's connected
account, and the payment instructions statements became, with what Stripe made of them."""

from __future__ import annotations

from typing import Any

from flask import current_app
from marshmallow import Schema, fields, validate
from sqlalchemy import select

from coalition.errors import CoalitionError
from coalition.extensions import db
from coalition.web.access import require
from coalition.web.api import HTTP_URL, PageArgs, Strict, blueprint, page_schema, paginate, pattern
from coalition.web.fields import MoneySchema
from settlement import payments
from settlement.api import PartyOut
from settlement.gateway import GatewayError, gateway
from settlement.models import INSTRUCTION_STATUSES
from settlement.money import money
from settlement.statements import MONTH, check_month

bp = blueprint(
    "payments", __name__, "Payments: merchants' Stripe accounts and payment instructions"
)
instructions = payments.instructions
statements = payments.statements
merchants = payments.merchants


HTTPS_URL = HTTP_URL.replace("https?", "https")


class StripeUnavailable(CoalitionError):
    status, code, title = 502, "stripe_unavailable", "Stripe did not answer as expected"


class AccountLinkIn(Strict):
    return_url = fields.String(
        required=True,
        validate=[validate.Length(max=2000), pattern(HTTPS_URL, "Not a valid https URL.")],
    )
    refresh_url = fields.String(
        required=True,
        validate=[validate.Length(max=2000), pattern(HTTPS_URL, "Not a valid https URL.")],
    )


class AccountLinkOut(Schema):
    url = fields.String()
    stripe_account = fields.String()


class PaymentListArgs(PageArgs):
    status = fields.String(validate=validate.OneOf(INSTRUCTION_STATUSES))
    month = fields.String(validate=validate.Regexp(MONTH, error="a month: 2026-10"))


class PaymentOut(Schema):
    """`amount` is money (minor units); `kind` says who pays: `transfer` the operator pays the
    merchant, `invoice` the merchant pays the operator."""

    id = fields.String()
    merchant = fields.Nested(PartyOut)
    statement = fields.String()
    month = fields.String()
    kind = fields.String()
    amount = fields.Nested(MoneySchema)
    status = fields.String()
    stripe_id = fields.String(allow_none=True)
    attempts = fields.Integer()
    last_error = fields.String(allow_none=True)
    created_at = fields.DateTime()
    submitted_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)


def _payment(row: Any) -> dict[str, Any]:
    return {
        "id": row.public_id,
        "merchant": {"id": row.merchant, "name": row.merchant_name},
        "statement": row.statement,
        "month": row.month,
        "kind": row.kind,
        "amount": money(row.amount_minor, row.currency),
        "status": row.status,
        "stripe_id": row.stripe_id,
        "attempts": row.attempts,
        "last_error": row.last_error,
        "created_at": row.created_at,
        "submitted_at": row.submitted_at,
        "finished_at": row.finished_at,
    }


@bp.route("/ops/merchants/<merchant_id>/stripe-account-link", methods=["POST"])
@require("operator", kinds=("operator",))
@bp.arguments(AccountLinkIn)
@bp.response(201, AccountLinkOut)
@bp.alt_response(502, description="Stripe did not answer as expected (`stripe_unavailable`).")
def create_account_link(link: dict[str, Any], merchant_id: str) -> Any:
    """Where the merchant fills in its Stripe connected account (made first if it has none);
    the link is single-use and short-lived, so ask for a new one each time."""
    session = db.session()
    try:
        made = payments.start_onboarding(
            session,
            gateway(current_app),
            merchant_id,
            link["return_url"],
            link["refresh_url"],
        )
    except GatewayError as exc:
        session.rollback()
        raise StripeUnavailable(str(exc), stripe_code=exc.code) from exc
    session.commit()
    return made


@bp.route("/ops/payments", methods=["GET"])
@require("operator", kinds=("operator",))
@bp.arguments(PaymentListArgs, location="query")
@bp.response(200, page_schema(PaymentOut, "PaymentPage"))
def list_payments(args: dict[str, Any]) -> Any:
    """Payment instructions, newest first; `status` and `month` filter."""
    query = (
        select(
            instructions,
            statements.c.public_id.label("statement"),
            statements.c.month,
            merchants.c.public_id.label("merchant"),
            merchants.c.name.label("merchant_name"),
        )
        .join(statements, statements.c.id == instructions.c.statement_id)
        .join(merchants, merchants.c.id == instructions.c.merchant_id)
    )
    if args.get("status"):
        query = query.where(instructions.c.status == args["status"])
    if args.get("month"):
        check_month(db.session(), args["month"])
        query = query.where(statements.c.month == args["month"])
    return paginate(query, instructions.c.id, args, _payment)
