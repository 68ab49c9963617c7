"""An alert's evidence as a person reads it on the console: a sentence saying what was found,
the figures with their labels, the members and transactions involved, and the thresholds the
rule used. The evidence itself is the report's JSON (`coalition.fraud.report`)."""

from __future__ import annotations

from typing import Any

from flask_babel import gettext as _


def _merchant(value: Any) -> str:
    if isinstance(value, dict):
        return f"{value.get('name')} ({value.get('id')})"
    return "" if value is None else str(value)


def describe(kind: str, evidence: dict[str, Any]) -> dict[str, Any]:
    """`summary`, `figures` [(label, value)], `members` [ids], `transactions` [rows],
    `thresholds` [(label, value)]."""
    e = evidence
    figures: list[tuple[str, Any]] = []
    summary = ""
    if kind == "redemption_excess":
        summary = _(
            "%(merchant)s redeemed %(ratio)s times the points it issued over %(days)s days.",
            merchant=_merchant(e.get("merchant")),
            ratio=e.get("ratio") or "∞",
            days=e["thresholds"]["window_days"],
        )
        figures = [
            (_("Points issued"), e.get("issued_points")),
            (_("Points redeemed"), e.get("redeemed_points")),
            (_("Redemptions"), e.get("redemptions")),
            (_("Members who redeemed"), e.get("members")),
        ]
    elif kind == "self_dealing":
        summary = _(
            "%(merchant)s redeemed points its own till had issued to the same members less than"
            " %(hours)s hours before: %(members)s members, %(share)s of the day's redeemed points.",
            merchant=_merchant(e.get("merchant")),
            hours=e["thresholds"]["window_hours"],
            members=e.get("members_count"),
            share=f"{float(e.get('quick_share') or 0) * 100:.0f} %",
        )
        figures = [
            (_("Redemptions that day"), e.get("redemptions")),
            (_("Points redeemed that day"), e.get("redeemed_points")),
            (_("Redemptions right after an earn there"), e.get("quick_redemptions")),
            (_("Their points"), e.get("quick_points")),
        ]
    elif kind == "enrol_drain":
        summary = _(
            "Member %(member)s enrolled and spent %(spent)s of %(received)s points within"
            " %(hours)s hours.",
            member=e.get("member"),
            spent=e.get("spent_points"),
            received=e.get("received_points"),
            hours=e.get("hours_to_drain"),
        )
        figures = [
            (_("Enrolled at (UTC)"), e.get("enrolled_at")),
            (_("Points received"), e.get("received_points")),
            (_("Points spent"), e.get("spent_points")),
            (_("Shops"), ", ".join(e.get("merchants") or [])),
        ]
    elif kind == "unusual_transaction":
        transaction = e.get("transaction") or {}
        summary = _(
            "A %(type)s of %(points)s points at %(merchant)s, %(times)s times the shop's 99th"
            " percentile.",
            type=transaction.get("type"),
            points=transaction.get("points"),
            merchant=_merchant(e.get("merchant")),
            times=e.get("times_p99"),
        )
        figures = [
            (_("The shop's median (points)"), e.get("merchant_median_points")),
            (_("The shop's 99th percentile (points)"), e.get("merchant_p99_points")),
            (_("Transactions it is judged by"), e.get("history_transactions")),
        ]
    elif kind == "earn_spend_cluster":
        summary = _(
            "%(count)s members earned only at %(earn)s and spent only at %(spend)s; the"
            " coalition's other members would predict %(expected)s.",
            count=e.get("members_count"),
            earn=_merchant(e.get("earn_merchant")),
            spend=_merchant(e.get("spend_merchant")),
            expected=e.get("expected_members"),
        )
        figures = [
            (
                _("Members who earned at one shop and spent at one shop"),
                e.get("single_shop_members"),
            ),
        ]
    elif kind == "wrong_codes":
        summary = _(
            "%(wrong)s wrong redemption codes at %(merchant)s in one day, %(lockouts)s members"
            " locked out.",
            wrong=e.get("wrong_codes"),
            merchant=_merchant(e.get("merchant")),
            lockouts=e.get("lockouts"),
        )
        figures = [
            (_("Members"), e.get("members_count")),
            (_("First (UTC)"), e.get("first_at")),
            (_("Last (UTC)"), e.get("last_at")),
        ]
    elif kind == "velocity":
        who = e.get("member") or _merchant(e.get("merchant"))
        summary = _(
            "%(refusals)s spendings by %(who)s refused by the %(limit)s limit of %(points)s"
            " points.",
            refusals=e.get("refusals"),
            who=who,
            limit=_("member's daily") if e.get("limit") == "member" else _("merchant's hourly"),
            points=e.get("limit_points"),
        )
        figures = [(_("Points asked for in all"), e.get("asked_points"))]
    members = e.get("members") or []
    if members and isinstance(members[0], dict):
        members = [f"{m['member']} ({m['wrong_codes']})" for m in members]
    transactions = e.get("transactions") or (
        [e["transaction"]] if e.get("transaction") else e.get("refused") or []
    )
    thresholds = [
        (name.replace("_", " "), value) for name, value in (e.get("thresholds") or {}).items()
    ]
    return {
        "summary": summary,
        "figures": figures,
        "members": members,
        "transactions": transactions,
        "thresholds": thresholds,
    }
