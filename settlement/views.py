"""The operator console's settlement pages, `/ops/settlement` (SPEC 3.9): the runs (start one for
a day, see its positions), the monthly report (net positions as bars, the flows as a heat map,
CSV and PDF), the payments and their status, and the liability. Money pages: admin and finance
only; support staff get a 403.

Each page reads through `settlement.reads` and `settlement.reports`; starting a run goes through
the same service as the operator API (`settlement.runs.request_run`, then the run's job), which
writes the audit event in the run's transaction."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_babel import format_date
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from coalition import clock, economics
from coalition.errors import InvalidRequest
from coalition.extensions import db
from coalition.jobs import enqueue
from coalition.staff.views import current_staff, staff_required
from coalition.web import pages
from settlement import business_days, reads, reports, tasks
from settlement import runs as settlement_runs
from settlement.forms import (
    PAYMENT_KIND_LABELS,
    PAYMENT_STATUS_LABELS,
    RUN_KIND_LABELS,
    RUN_STATUS_LABELS,
    MonthForm,
    PaymentFilterForm,
    RunFilterForm,
    RunForm,
)
from settlement.money import major
from settlement.report_charts import FlowLabels, NetLabels, flow_heatmap_svg, net_positions_svg
from settlement.report_renditions import flow_cells, net_bars, report_csv, report_pdf

bp = pages.face_blueprint("ops_settlement", __name__, "/ops/settlement")

MONEY_ROLES = ("admin", "finance")
# The report's tables show this many rows; the CSV and PDF hold every one (decision 157).
TABLE_ROWS = 200


@bp.context_processor
def _helpers() -> dict[str, Any]:
    return {
        "run_kinds": RUN_KIND_LABELS,
        "run_statuses": RUN_STATUS_LABELS,
        "payment_kinds": PAYMENT_KIND_LABELS,
        "payment_statuses": PAYMENT_STATUS_LABELS,
        "major": major,
        "month_name": _month_name,
    }


def _today() -> date:
    return business_days.today(clock.utcnow())


def _month_name(month: str) -> str:
    year, number = (int(part) for part in month.split("-"))
    return format_date(date(year, number, 1), "LLLL yyyy")


# Runs ---------------------------------------------------------------------------------------------


@bp.get("/runs")
@staff_required(*MONEY_ROLES)
def runs() -> str:
    """The runs, newest first, and the form to start one."""
    form = RunForm()
    if form.business_date.data is None:
        form.business_date.data = _today() - timedelta(days=1)
    return _runs_page(form)


def _runs_page(form: RunForm, status: int = 200) -> Any:
    filters = RunFilterForm(request.args)
    kind = filters.kind.data if filters.validate() and filters.kind.data else None
    number = pages.page_number()
    found = reads.newest_runs(db.session(), kind, number, pages.PAGE_SIZE)
    body = render_template(
        "ops/settlement/runs.html", form=form, filters=filters, found=found, today=_today()
    )
    return body, status


@bp.post("/runs")
@staff_required(*MONEY_ROLES)
def start_run() -> Any:
    """Settle a day: once and for all if it has ended, provisionally if it is today. The run
    is done by its job (at once where jobs run in-process); its page shows the result."""
    form = RunForm()
    if not form.validate():
        return _runs_page(form, 422)
    staff = current_staff()
    assert staff is not None
    session = db.session()
    day = form.business_date.data
    assert day is not None
    try:
        run = settlement_runs.request_run(session, day, clock.utcnow(), actor=staff.actor)
    except InvalidRequest as refused:
        session.rollback()
        form.business_date.errors = [_day_refusal(refused, day)]
        return _runs_page(form, 422)
    if run.status != "succeeded":
        enqueue(tasks.run_settlement, run.public_id, queue="settlement")
    if run.kind == "final":
        flash(_("%(day)s is settled for good.", day=format_date(day)), "success")
    else:
        flash(
            _(
                "%(day)s is reported provisionally: it has not ended, so nothing moves yet.",
                day=format_date(day),
            ),
            "info",
        )
    return redirect(url_for(".run", run_id=run.public_id), code=303)


def _day_refusal(refused: InvalidRequest, day: date) -> str:
    if day > _today():
        return _("This day has not begun; it cannot be settled yet.")
    return _("Nothing happened on this day: it is before the coalition's first terms.")


@bp.get("/runs/<run_id>")
@staff_required(*MONEY_ROLES)
def run(run_id: str) -> str:
    """A run: its day, kind and status, its totals and each merchant's position."""
    session = db.session()
    found_run = settlement_runs.run_by_public_id(session, run_id)
    number = pages.page_number()
    found = reads.run_positions(session, found_run, number, pages.PAGE_SIZE)
    return render_template(
        "ops/settlement/run.html",
        run=found_run,
        found=found,
        totals=found_run.totals or {},
        month=found_run.business_date.strftime("%Y-%m"),
    )


# The monthly report -------------------------------------------------------------------------------


def _month_form() -> MonthForm:
    form = MonthForm(request.args)
    if not request.args.get("month"):
        form.month.data = (_today() - timedelta(days=1)).strftime("%Y-%m")
    return form


def _report_or_errors(form: MonthForm) -> dict[str, Any] | None:
    """The month's report, or None with the form's errors said."""
    if not form.validate():
        return None
    try:
        return reports.month_report(db.session(), form.month.data or "")
    except InvalidRequest:
        form.month.errors = [
            _("Nothing happened in this month: it is before the coalition's first terms.")
        ]
        return None


@bp.get("/report")
@staff_required(*MONEY_ROLES)
def report() -> Any:
    """The month's net positions as bars, its flows as a heat map, and both as tables."""
    form = _month_form()
    found = _report_or_errors(form)
    if found is None:
        return render_template("ops/settlement/report.html", form=form, report=None), 422
    currency = found["currency"]
    cells, names = flow_cells(found)
    names = {key: _("Coalition operator") if key == "operator" else n for key, n in names.items()}
    net_svg = net_positions_svg(
        net_bars(found),
        currency=currency,
        labels=NetLabels(
            title=_("Net position per merchant"),
            pays=_("Pays the operator"),
            paid=_("Paid by the operator"),
            others=_("Others ({n})"),
            no_data=_("No settled days this month"),
        ),
    )
    flow_svg = flow_heatmap_svg(
        cells,
        names,
        currency=currency,
        labels=FlowLabels(
            title=_("Points of each issuer redeemed at each redeemer"),
            issuer=_("Issuer"),
            redeemer=_("Redeemer"),
            others=_("Others ({n})"),
            scale=_("Amount ({currency})"),
            no_data=_("No points travelled between shops this month"),
        ),
    )
    return render_template(
        "ops/settlement/report.html",
        form=form,
        report=found,
        net_svg=net_svg,
        flow_svg=flow_svg,
        names=names,
        table_rows=TABLE_ROWS,
        nets=Decimal(found["nets"]),
    )


def _download(body: str | bytes, mimetype: str, filename: str) -> Response:
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@bp.get("/report.csv")
@staff_required(*MONEY_ROLES)
def report_as_csv() -> Response:
    form = _month_form()
    found = _report_or_errors(form)
    if found is None:
        return redirect(url_for(".report", month=request.args.get("month", "")))
    return _download(report_csv(found), "text/csv", f"settlement-report-{found['month']}.csv")


@bp.get("/report.pdf")
@staff_required(*MONEY_ROLES)
def report_as_pdf() -> Response:
    form = _month_form()
    found = _report_or_errors(form)
    if found is None:
        return redirect(url_for(".report", month=request.args.get("month", "")))
    return _download(
        report_pdf(found), "application/pdf", f"settlement-report-{found['month']}.pdf"
    )


# Payments and liability ---------------------------------------------------------------------------


@bp.get("/payments")
@staff_required(*MONEY_ROLES)
def payments() -> str:
    """The payment instructions the statements became, newest first, with Stripe's answer."""
    filters = PaymentFilterForm(request.args)
    status = month = None
    if filters.validate():
        status = filters.status.data or None
        month = filters.month.data or None
    session = db.session()
    try:
        found = reads.newest_payments(session, status, month, pages.page_number(), pages.PAGE_SIZE)
    except InvalidRequest:
        filters.month.errors = [
            _("Nothing happened in this month: it is before the coalition's first terms.")
        ]
        found = reads.newest_payments(session, status, None, pages.page_number(), pages.PAGE_SIZE)
    return render_template(
        "ops/settlement/payments.html",
        filters=filters,
        found=found,
        filtered=bool(status or month),
    )


@bp.get("/liability")
@staff_required(*MONEY_ROLES)
def liability() -> str:
    """Points members hold now, what they are worth, by issuer, and breakage to date."""
    session = db.session()
    terms = economics.coalition_terms(session, _today())
    return render_template(
        "ops/settlement/liability.html",
        found=reports.liability(session, terms),
        currency=terms.currency,
    )
