"""The operator's payments (SPEC 3.5, 3.7): a Stripe onboarding link for a merchant's connected
account, and the payment instructions statements became, with what Stripe made of them."""

from __future__ import annotations

from typing import Any

from flask import current_app

from coalition.errors import CoalitionError
from coalition.extensions import db
from coalition.web.access import operator_actor, require
from coalition.web.api import blueprint, page_schema, paginate
from settlement import payments, reads, schemas
from settlement.gateway import GatewayError, gateway
from settlement.money import money

bp = blueprint(
    "payments", __name__, "Payments: merchants' Stripe accounts and payment instructions"
)


class StripeUnavailable(CoalitionError):
    status, code, title = 502, "stripe_unavailable", "Stripe did not answer as expected"


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
@bp.arguments(schemas.AccountLinkIn)
@bp.response(201, schemas.AccountLinkOut)
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
            actor=operator_actor(),
        )
    except GatewayError as exc:
        session.rollback()
        raise StripeUnavailable(str(exc), stripe_code=exc.code) from exc
    session.commit()
    return made


@bp.route("/ops/payments", methods=["GET"])
@require("operator", kinds=("operator",))
@bp.arguments(schemas.PaymentListArgs, location="query")
@bp.response(200, page_schema(schemas.PaymentOut, "PaymentPage"))
def list_payments(args: dict[str, Any]) -> Any:
    """Payment instructions, newest first; `status` and `month` filter."""
    query = reads.payments_query(db.session(), args.get("status"), args.get("month"))
    return paginate(query, reads.instructions.c.id, args, _payment)
