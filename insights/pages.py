"""What the insights pages share: the window a range form asks for (or the problem with it, shown
by the form), and the three charts of one scope's figures."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask_babel import gettext as _

from coalition import clock
from coalition.errors import InvalidRequest
from insights import charts, reads, services, zone
from insights.forms import RangeForm
from settlement.money import major


def window_of(form: RangeForm, *, operator: bool = False) -> reads.Window | None:
    """The form's window; None (its errors attached to the form) when it is not one. The
    operator's default is the nightly snapshot's range (decision 342)."""
    where = zone.name()
    if not form.validate():
        return None
    today = clock.business_date(clock.utcnow(), where)
    try:
        if operator and form.from_.data is None and form.to.data is None:
            return services.operator_default(today, where)
        return reads.window(form.from_.data, form.to.data, today, where)
    except InvalidRequest:
        form.to.errors = [
            _("The range must end on or after its first day and touch at most 24 months.")
        ]
        return None


def pictures(found: dict[str, Any]) -> dict[str, str]:
    return {
        "cohorts": charts.cohort_heatmap_svg(
            found["cohorts"],
            title=_("Cohort retention: members active, by month of first purchase"),
            since_label=_("Months since the first purchase"),
            empty_note=_("No first purchases in this range"),
        ),
        "concentration": charts.concentration_svg(
            found["concentration"]["curve"],
            title=_("Share of sales by share of customers, best first"),
            customers_label=_("Customers (best first)"),
            sales_label=_("Share of sales"),
            equal_label=_("Equal customers"),
        ),
        "net": charts.net_by_month_svg(
            found["net_by_month"],
            title=_("Net position by month (%(currency)s)", currency=found["currency"]),
            pays_label=_("Paid to the coalition"),
            paid_label=_("Paid by the coalition"),
        ),
    }


def percent(ratio: str) -> str:
    """A ratio ("0.4167") as a percentage with two places ("41.67 %")."""
    return f"{Decimal(ratio) * 100:.2f} %"


def helpers() -> dict[str, Any]:
    return {"major": major, "percent": percent}
