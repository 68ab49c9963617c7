"""Request and response bodies of the insights API (SPEC 3.3, 3.5). Every figure's definition is
in its description (and in docs/decisions.md, A1-A8); names are unique across the API."""

from __future__ import annotations

from marshmallow import Schema, fields

from coalition.web.api import Strict
from coalition.web.fields import text

_RATIO = 'a decimal string with 4 places, rounded half-even ("0.4167")'


class InsightsArgs(Strict):
    from_ = fields.Date(
        data_key="from",
        metadata={
            "description": "first business date (inclusive, the coalition's time zone); default: "
            "the first day of the month 11 months before `to`"
        },
    )
    to = fields.Date(
        metadata={
            "description": "last business date (inclusive); default today. `from` after `to`, or "
            "a range touching more than 24 calendar months, is a 422 problem"
        }
    )


class OpsInsightsArgs(InsightsArgs):
    merchant = text(
        40, metadata={"description": "a partner's `mer_` id: its figures too, as `partner`"}
    )


class InsightsMoney(Schema):
    amount = fields.Integer(required=True, metadata={"description": "minor units"})
    currency = fields.String(required=True)


class InsightsDecimalMoney(Schema):
    amount = fields.String(
        required=True, metadata={"description": 'major units, a decimal string ("12.35")'}
    )
    currency = fields.String(required=True)


class InsightsWon(Schema):
    members = fields.Integer(
        required=True,
        metadata={
            "description": "members whose first purchase ever at this merchant is in the range "
            "and who, before it, had joined at another partner or bought at another partner "
            "(for the coalition: the sum over partners)"
        },
    )
    came_back = fields.Integer(
        required=True,
        metadata={"description": "of them, those who bought here again later in the range"},
    )


class InsightsCohort(Schema):
    month = fields.String(
        required=True, metadata={"description": "the cohort: month of the first purchase, YYYY-MM"}
    )
    members = fields.Integer(
        required=True,
        metadata={"description": "members whose first purchase ever (here) was in that month"},
    )
    active = fields.List(
        fields.Integer(),
        required=True,
        metadata={
            "description": "element k: how many of them bought (here) k months after their "
            "cohort month, up to the range's last month (element 0 equals `members`)"
        },
    )


class InsightsCurvePoint(Schema):
    customers_percent = fields.Integer(required=True)
    sales_share = fields.String(required=True, metadata={"description": _RATIO})


class InsightsConcentration(Schema):
    customers = fields.Integer(required=True)
    top_20_share = fields.String(
        required=True,
        metadata={
            "description": "sales of the top ceil(0.2 x customers) customers (ranked by their "
            f"sales in the range, ties by account) over all sales; {_RATIO}"
        },
    )
    curve = fields.List(
        fields.Nested(InsightsCurvePoint),
        required=True,
        metadata={"description": "the same share for the top 0, 10, 20 ... 100 % of customers"},
    )


class InsightsPoints(Schema):
    issued = fields.Integer(
        required=True,
        metadata={"description": "points of purchases here in the range (with their bonuses)"},
    )
    redeemed = fields.Integer(
        required=True, metadata={"description": "points redeemed here, net of reversals"}
    )


class InsightsNetMonth(Schema):
    month = fields.String(required=True)
    owed = fields.String(required=True, metadata={"description": "owed to the operator, exact"})
    receivable = fields.String(required=True, metadata={"description": "owed by the operator"})
    net = fields.String(
        required=True,
        metadata={"description": "owed - receivable over the month's settled days; positive: pays"},
    )
    currency = fields.String(required=True)


class InsightsOut(Schema):
    from_ = fields.Date(required=True, data_key="from", attribute="from")
    to = fields.Date(required=True)
    currency = fields.String(required=True)
    won = fields.Nested(InsightsWon, required=True)
    purchases = fields.Integer(
        required=True, metadata={"description": "purchases (earn transactions) in the range"}
    )
    sales = fields.Nested(
        InsightsMoney,
        required=True,
        metadata={"description": "the purchases' amounts, gross of refunds"},
    )
    customers = fields.Integer(
        required=True, metadata={"description": "members with a purchase in the range"}
    )
    repeat_customers = fields.Integer(
        required=True, metadata={"description": "customers with two or more purchases"}
    )
    repeat_rate = fields.String(
        required=True, metadata={"description": f"repeat_customers / customers; {_RATIO}"}
    )
    average_basket = fields.Nested(
        InsightsDecimalMoney,
        required=True,
        metadata={"description": "sales / purchases, rounded half-even to minor units"},
    )
    cohorts = fields.List(fields.Nested(InsightsCohort), required=True)
    concentration = fields.Nested(InsightsConcentration, required=True)
    points = fields.Nested(InsightsPoints, required=True)
    net_by_month = fields.List(
        fields.Nested(InsightsNetMonth),
        required=True,
        metadata={"description": "every month of the range, from settlement's final runs"},
    )


class InsightsParty(Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)


class InsightsPartnerOut(InsightsOut):
    merchant = fields.Nested(InsightsParty, required=True)


class InsightsLiability(Schema):
    outstanding_points = fields.Integer(
        required=True, metadata={"description": "points members hold now in open lots"}
    )
    value = fields.Nested(InsightsMoney, required=True)
    breakage_to_date = fields.Nested(lambda: InsightsBreakage(), required=True)


class InsightsBreakage(Schema):
    points = fields.Integer(required=True, metadata={"description": "points expired"})
    value = fields.Nested(InsightsMoney, required=True)


class InsightsTrade(Schema):
    merchant = fields.Nested(InsightsParty, required=True)
    imported_points = fields.Integer(
        required=True,
        metadata={"description": "points issued elsewhere (partners, operator) redeemed here"},
    )
    imported_value = fields.String(required=True)
    exported_points = fields.Integer(
        required=True, metadata={"description": "points issued here redeemed elsewhere"}
    )
    exported_value = fields.String(required=True)
    balance_points = fields.Integer(required=True)
    balance_value = fields.String(required=True)
    currency = fields.String(required=True)


class OpsInsightsOut(Schema):
    coalition = fields.Nested(InsightsOut, required=True)
    as_of = fields.DateTime(
        required=True,
        allow_none=True,
        metadata={
            "description": "when the coalition's figures, breakage and balance of trade were "
            "computed, if they come from the nightly snapshot (the default range: the 12 "
            "months to yesterday); null when computed for this request"
        },
    )
    partner = fields.Nested(InsightsPartnerOut, allow_none=True, required=True)
    liability = fields.Nested(InsightsLiability, required=True)
    breakage = fields.Nested(
        InsightsBreakage, required=True, metadata={"description": "points expired in the range"}
    )
    balance_of_trade = fields.List(
        fields.Nested(InsightsTrade),
        required=True,
        metadata={"description": "per partner, from settlement's flows of the range's days"},
    )
