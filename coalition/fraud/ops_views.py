"""The operator console's fraud report (SPEC 3.10, `/ops/fraud`): the nightly report's alerts by
state, each with its evidence as a person reads it (merchant names, member ids, figures), and
the buttons that dismiss one (with a reason) or confirm it; and the fraud events the report
reads. Admin and support staff decide; finance staff may read."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from coalition import clock
from coalition.errors import InvalidRequest
from coalition.extensions import db
from coalition.fraud import evidence, reads, services
from coalition.fraud.forms import ConfirmAlertForm, DismissAlertForm
from coalition.staff.views import current_staff, staff_required
from coalition.web import pages

bp = pages.face_blueprint("ops_fraud", __name__, "/ops/fraud")

READERS = ("admin", "finance", "support")
DECIDERS = ("admin", "support")


def _alerts(dismiss_form: DismissAlertForm | None = None, failed: str | None = None) -> Any:
    state = request.args.get("state", "open")
    if state not in reads.STATES:
        abort(404)
    session = db.session()
    number = pages.page_number()
    found = reads.alert_page(session, state, number, pages.PAGE_SIZE)
    staff = current_staff()
    rows = [{**row, "shown": evidence.describe(row["kind"], row["evidence"])} for row in found.rows]
    page = render_template(
        "ops/fraud_alerts.html",
        rows=rows,
        found=found,
        number=number,
        state=state,
        counts=reads.alert_counts(session),
        may_decide=staff is not None and staff.role in DECIDERS,
        dismiss_form=dismiss_form or DismissAlertForm(),
        confirm_form=ConfirmAlertForm(),
        failed=failed,
    )
    return page, 422 if failed else 200


@bp.get("")
@staff_required(*READERS)
def alerts() -> Any:
    """The alerts in one state (`?state=`, open by default), newest first."""
    return _alerts()


@bp.post("/<alert_id>/dismiss")
@staff_required(*DECIDERS)
def dismiss(alert_id: str) -> Any:
    form = DismissAlertForm()
    if not form.validate_on_submit():
        return _alerts(form, failed=alert_id)
    return _decide(
        lambda session, actor, now: services.dismiss(
            session, alert_id, form.reason.data or "", actor, now
        ),
        _("The alert is dismissed."),
    )


@bp.post("/<alert_id>/confirm")
@staff_required(*DECIDERS)
def confirm(alert_id: str) -> Any:
    if not ConfirmAlertForm().validate_on_submit():
        return redirect(url_for("ops_fraud.alerts"), code=303)
    return _decide(
        lambda session, actor, now: services.confirm(session, alert_id, actor, now),
        _("The alert is confirmed as fraud."),
    )


def _decide(change: Any, done: str) -> Response:
    staff = current_staff()
    assert staff is not None
    session = db.session()
    try:
        change(session, staff.actor, clock.utcnow())
    except (services.AlertDecided, InvalidRequest) as refusal:
        session.rollback()
        flash(refusal.detail, "error")
        return redirect(url_for("ops_fraud.alerts"), code=303)
    session.commit()
    flash(done, "success")
    return redirect(url_for("ops_fraud.alerts"), code=303)


@bp.get("/events")
@staff_required(*READERS)
def events() -> str:
    """Spendings refused by a velocity limit and wrong redemption codes, newest first: what
    the nightly report reads besides the ledger."""
    number = pages.page_number()
    found = reads.page(db.session(), number, pages.PAGE_SIZE)
    return render_template("ops/fraud.html", found=found, number=number)
