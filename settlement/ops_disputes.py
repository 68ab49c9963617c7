"""The operator console's statement disputes, `/ops/disputes` (SPEC 3.10): open disputes first,
each with the disputed line and the merchant's reason, and each dispute's page with the form
that answers it: a credit note, a debit note (an amount in the statement's currency) or a
rejection with a reason. Admin and finance only, as settlement's money pages; the answer goes
through `settlement.disputes.resolve`, which writes the audit log with the staff as the actor."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from flask import flash, redirect, render_template, url_for
from flask_babel import gettext as _

from coalition import clock, economics
from coalition.errors import CoalitionError
from coalition.extensions import db
from coalition.staff.views import current_staff, staff_required
from coalition.web import pages
from settlement import disputes
from settlement.forms import DISPUTE_STATUS_LABELS, NOTE_LABELS, ResolveForm
from settlement.money import major

bp = pages.face_blueprint("ops_disputes", __name__, "/ops/disputes")

MONEY_ROLES = ("admin", "finance")


@bp.context_processor
def _helpers() -> dict[str, Any]:
    return {
        "dispute_statuses": DISPUTE_STATUS_LABELS,
        "note_kinds": NOTE_LABELS,
        "major": major,
    }


@bp.get("")
@staff_required(*MONEY_ROLES)
def index() -> str:
    """Open disputes first, the longest waiting on top; then the settled ones."""
    number = pages.page_number()
    rows, has_next = disputes.open_first(db.session(), number, pages.PAGE_SIZE)
    return render_template(
        "ops/disputes.html",
        rows=rows,
        number=number,
        has_next=has_next,
        has_previous=number > 1,
        open_count=disputes.open_count(db.session()),
    )


@bp.get("/<dispute_id>")
@staff_required(*MONEY_ROLES)
def detail(dispute_id: str) -> Any:
    return _detail(dispute_id, ResolveForm())


def _detail(dispute_id: str, form: ResolveForm, status: int = 200) -> Any:
    view = disputes.dispute_view(db.session(), dispute_id)
    return render_template("ops/dispute.html", dispute=view, form=form), status


@bp.post("/<dispute_id>")
@staff_required(*MONEY_ROLES)
def resolve(dispute_id: str) -> Any:
    form = ResolveForm()
    session = db.session()
    view = disputes.dispute_view(session, dispute_id)
    if not form.validate_on_submit():
        return _detail(dispute_id, form, 422)
    outcome = form.outcome.data or ""
    amount_minor = None
    currency: str | None = None
    if outcome in disputes.NOTE_KINDS:
        currency = str(view["currency"])
        amount_minor = _minor(form, currency)
        if amount_minor is None:
            return _detail(dispute_id, form, 422)
    elif form.amount.data:
        form.amount.errors = [_("A rejection has no amount.")]
        return _detail(dispute_id, form, 422)
    staff = current_staff()
    assert staff is not None
    try:
        disputes.resolve(
            session,
            dispute_id,
            outcome,
            amount_minor,
            currency,
            form.reason.data,
            staff.actor,
            clock.utcnow(),
        )
    except CoalitionError as refusal:
        session.rollback()
        errors = refusal.extra.get("errors") or {}
        for name, why in errors.items():
            getattr(form, name, form.reason).errors = list(why)
        if not errors:
            flash(refusal.detail, "error")
        return _detail(dispute_id, form, 409 if refusal.status == 409 else 422)
    session.commit()
    flash(_("The dispute is settled. The merchant has been told."), "success")
    return redirect(url_for("ops_disputes.index"), code=303)


def _minor(form: ResolveForm, currency: str) -> int | None:
    """The form's amount in whole minor units of `currency`, greater than 0, or None with the
    field's error set."""
    text = (form.amount.data or "").strip().replace(",", ".")
    digits = economics.MINOR_UNIT_DIGITS[currency]
    try:
        minor = Decimal(text).scaleb(digits)
    except InvalidOperation:
        minor = Decimal(-1)
    if not text or minor <= 0 or minor != minor.to_integral_value():
        form.amount.errors = [
            _("A note needs an amount greater than 0 with at most %(n)s decimals.", n=digits)
        ]
        return None
    return int(minor)
