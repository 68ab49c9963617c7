"""The operator console's merchant pages (SPEC 3.9): applications to approve or refuse with a
reason, merchants to suspend or let back in, and each merchant's API clients. Any staff may open
them (no money is shown). Each action calls one `merchants.services` operation, naming the staff
as the audit log's actor, and commits. The monthly issuance cap (SPEC 2, Budgets) is set by
admin and finance staff (`merchants.budgets`)."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import TextAreaField
from wtforms.validators import DataRequired, Length

from coalition import clock
from coalition.errors import CoalitionError
from coalition.extensions import db
from coalition.staff.views import current_staff, staff_required
from coalition.web import pages
from merchants import budgets, reads, services
from merchants.rules_forms import BudgetForm

bp = pages.face_blueprint("ops_merchants", __name__, "/ops/merchants")

STATUSES = ("pending", "active", "suspended", "refused")
MAX_REASON = 1000


class ActionForm(FlaskForm):
    """A button's form: only its CSRF token."""


class RefuseForm(FlaskForm):
    reason = TextAreaField(
        _l("Reason for refusing (the applicant reads it)"),
        validators=[DataRequired(), Length(max=MAX_REASON)],
    )


def _status_labels() -> dict[str, str]:
    return {
        "pending": _("Applications"),
        "active": _("Active"),
        "suspended": _("Suspended"),
        "refused": _("Refused"),
        "": _("All"),
    }


@bp.get("")
@staff_required()
def index() -> str:
    """The merchants in one status (pending applications first), newest first."""
    status = request.args.get("status", "pending")
    if status not in STATUSES:
        status = ""
    number = pages.page_number()
    session = db.session()
    rows, has_next = reads.merchant_page(session, status or None, number, pages.PAGE_SIZE)
    return render_template(
        "ops/merchants.html",
        rows=rows,
        status=status,
        labels=_status_labels(),
        counts=reads.status_counts(session),
        number=number,
        has_next=has_next,
        action_form=ActionForm(),
    )


def _merchant_page(
    merchant_id: str,
    refuse_form: RefuseForm | None = None,
    budget_form: BudgetForm | None = None,
) -> str:
    session = db.session()
    found = reads.merchant(session, merchant_id)
    budget = budgets.usage_of(session, merchant_id, clock.utcnow())
    if budget_form is None:
        budget_form = BudgetForm(formdata=None)
        budget_form.monthly_issuance_cap.data = budget.monthly_issuance_cap
    return render_template(
        "ops/merchant.html",
        merchant=found,
        clients=reads.merchant_clients(session, merchant_id),
        action_form=ActionForm(),
        refuse_form=refuse_form or RefuseForm(),
        budget=budget,
        budget_form=budget_form,
        labels=_status_labels(),
    )


@bp.get("/<merchant_id>")
@staff_required()
def merchant(merchant_id: str) -> str:
    return _merchant_page(merchant_id)


@bp.post("/<merchant_id>/budget")
@staff_required("admin", "finance")
def set_budget(merchant_id: str) -> Any:
    form = BudgetForm()
    if not form.validate_on_submit():
        return _merchant_page(merchant_id, budget_form=form), 422
    cap = form.monthly_issuance_cap.data
    return _act(
        merchant_id,
        lambda s: budgets.set_cap(s, merchant_id, cap, clock.utcnow(), actor=_actor()),
        _("The monthly issuance cap is now %(cap)s points.", cap=cap)
        if cap is not None
        else _("The merchant has no monthly issuance cap now."),
    )


def _act(merchant_id: str, change: Any, done: str) -> Response:
    session = db.session()
    try:
        change(session)
    except services.WrongStatus:
        session.rollback()
        flash(_("Only a pending application can be refused."), "error")
    except CoalitionError as exc:
        session.rollback()
        if exc.status == 404:
            raise
        flash(_("The change was refused: %(why)s", why=exc.detail), "error")
    else:
        session.commit()
        flash(done, "success")
    return redirect(url_for("ops_merchants.merchant", merchant_id=merchant_id), code=303)


def _actor() -> Any:
    staff = current_staff()
    assert staff is not None
    return staff.actor


@bp.post("/<merchant_id>/approve")
@staff_required()
def approve(merchant_id: str) -> Response:
    return _act(
        merchant_id,
        lambda s: services.approve_merchant(s, merchant_id, clock.utcnow(), actor=_actor()),
        _("The merchant is approved: its clients work."),
    )


@bp.post("/<merchant_id>/reactivate")
@staff_required()
def reactivate(merchant_id: str) -> Response:
    return _act(
        merchant_id,
        lambda s: services.approve_merchant(s, merchant_id, clock.utcnow(), actor=_actor()),
        _("The merchant is active again: its clients work."),
    )


@bp.post("/<merchant_id>/suspend")
@staff_required()
def suspend(merchant_id: str) -> Response:
    return _act(
        merchant_id,
        lambda s: services.suspend_merchant(s, merchant_id, clock.utcnow(), actor=_actor()),
        _("The merchant is suspended: its clients are refused from now on."),
    )


@bp.post("/<merchant_id>/refuse")
@staff_required()
def refuse(merchant_id: str) -> Any:
    form = RefuseForm()
    if not form.validate_on_submit():
        return _merchant_page(merchant_id, refuse_form=form), 422
    reason = form.reason.data or ""
    return _act(
        merchant_id,
        lambda s: services.refuse_merchant(s, merchant_id, reason, clock.utcnow(), actor=_actor()),
        _("The application is refused; the applicant can read why."),
    )
