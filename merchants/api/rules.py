"""A merchant's earn rules (SPEC 2, 3.3: `GET`/`PUT /api/v1/earn-rules`, scope `rules:write`) and
the operator's monthly issuance cap per merchant (SPEC 2, Budgets: `GET`/`PUT
/api/v1/ops/merchants/{id}/budget`). Thin: validate with `merchants.rules_schemas`, call
`merchants.rules` or `merchants.budgets`, serialise."""

from __future__ import annotations

from typing import Any

from coalition import clock
from coalition.extensions import db
from coalition.web.access import operator_actor, principal, require
from coalition.web.api import blueprint
from merchants import budgets, campaign_reports, rules
from merchants.rules_schemas import (
    BudgetIn,
    BudgetOut,
    CampaignReportOut,
    EarnRulesIn,
    EarnRulesOut,
)

bp = blueprint("earn_rules", __name__, "Earn rules and issuance budgets")


def _merchant_id() -> int:
    merchant_id = principal().merchant_id
    if merchant_id is None:  # `require` lets only merchant tokens in
        raise AssertionError("an earn-rules route ran without a merchant")
    return merchant_id


def rules_body(found: rules.RulesVersion) -> dict[str, Any]:
    """A version of the rules as the API shows it: its number, since when, the document."""
    return {
        "version": found.version,
        "effective_from": found.effective_from.isoformat(),
        **found.document,
    }


def budget_body(usage: budgets.Usage) -> dict[str, Any]:
    return {
        "merchant": usage.merchant,
        "monthly_issuance_cap": usage.monthly_issuance_cap,
        "month": usage.month.strftime("%Y-%m"),
        "issued": usage.issued,
    }


@bp.route("/earn-rules", methods=["GET"])
@require("rules:write")
@bp.response(200, EarnRulesOut)
def get_earn_rules() -> Any:
    """The merchant's earn rules in force now, with their `version`."""
    return rules_body(rules.in_force_at(db.session(), _merchant_id(), clock.utcnow()))


@bp.route("/earn-rules", methods=["PUT"])
@require("rules:write")
@bp.arguments(EarnRulesIn)
@bp.response(200, EarnRulesOut)
@bp.alt_response(422, description="Invalid rules, or a base rate outside the operator's bounds.")
def put_earn_rules(document: dict[str, Any]) -> Any:
    """Replace the merchant's earn rules: a new version, in force from now. Purchases made
    before now are still earned under the version in force when they were made. The same rules
    as those in force write no new version (a retry changes nothing)."""
    session, now = db.session(), clock.utcnow()
    found = rules.put(
        session,
        merchant_id=_merchant_id(),
        document=document,
        actor_id=principal().client_id,
        now=now,
    )
    session.commit()
    return rules_body(found)


def report_body(found: campaign_reports.Report) -> dict[str, Any]:
    """A campaign's report as the API shows it (decimals as strings)."""

    def group(g: campaign_reports.Group) -> dict[str, Any]:
        return {
            "members": g.members,
            "buyers": g.buyers,
            "purchases": g.purchases,
            "sales": str(g.sales),
            "points": g.points,
            "average_basket": None if g.average_basket is None else str(g.average_basket),
        }

    uplift = found.uplift
    return {
        "campaign": dict(found.document),
        "basis": found.basis,
        "window_start": found.window_start.isoformat(),
        "window_end": found.window_end.isoformat(),
        "as_of": found.as_of.isoformat(),
        "currency": found.currency,
        "targeted": group(found.targeted),
        "control": group(found.control),
        "uplift": None
        if uplift is None
        else {
            "sales_per_member": str(uplift.sales_per_member),
            "buyer_rate_points": str(uplift.buyer_rate_points),
        },
    }


@bp.route("/earn-rules/campaigns/<name>/report", methods=["GET"])
@require("rules:write")
@bp.response(200, CampaignReportOut)
@bp.alt_response(404, description="No targeted campaign of that name.")
def get_campaign_report(name: str) -> Any:
    """A targeted campaign's report: its targeted group against its control group over the
    campaign's window (members, buyers, purchases, sales, points, average basket) and the
    uplift. See docs/decisions.md (C7) for who counts in each group."""
    return report_body(campaign_reports.report(db.session(), _merchant_id(), name, clock.utcnow()))


@bp.route("/ops/merchants/<merchant_id>/budget", methods=["GET"])
@require("operator", kinds=("operator",))
@bp.response(200, BudgetOut)
def get_budget(merchant_id: str) -> Any:
    """The merchant's monthly issuance cap and what it has issued this month."""
    return budget_body(budgets.usage_of(db.session(), merchant_id, clock.utcnow()))


@bp.route("/ops/merchants/<merchant_id>/budget", methods=["PUT"])
@require("operator", kinds=("operator",))
@bp.arguments(BudgetIn)
@bp.response(200, BudgetOut)
def put_budget(budget: dict[str, Any], merchant_id: str) -> Any:
    """Set (or, with null, remove) the merchant's monthly issuance cap: the merchant-funded
    points it may issue per calendar month. A purchase past it is refused with 422
    `issuance_cap_reached`."""
    session = db.session()
    usage = budgets.set_cap(
        session,
        merchant_id,
        budget["monthly_issuance_cap"],
        clock.utcnow(),
        actor=operator_actor(),
    )
    session.commit()
    return budget_body(usage)
