"""The operator console's rewards, `/ops/rewards` (SPEC 3.9): every listing of the catalogue,
whoever supplies it, and the operator's own listings to add and change (admin staff). Each change
goes through `rewards.services` and is written to the audit log, naming the staff."""

from __future__ import annotations

from typing import Any

from flask import current_app, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from sqlalchemy.orm import Session

from coalition import audit, clock
from coalition.errors import CoalitionError
from coalition.extensions import db
from coalition.staff.views import current_staff, staff_required
from coalition.web import pages
from rewards import reads, services
from rewards.forms import RewardForm, VoucherForm, fill, save_listing
from rewards.pages import orders_page
from rewards.reads import RewardView

bp = pages.face_blueprint("ops_rewards", __name__, "/ops/rewards")

EDIT_ROLES = ("admin",)
# Who hands over the coalition's own rewards: day-to-day work, not the economics.
FULFIL_ROLES = ("admin", "support")


def _audit(session: Session, action: str, view: RewardView) -> None:
    staff = current_staff()
    if staff is None:  # pragma: no cover - staff_required guards every caller
        raise AssertionError("a console page ran without staff")
    audit.record(
        session,
        staff.actor,
        action,
        "reward",
        view.id,
        after={"name": view.name, "points": view.points, "stock": view.stock},
        now=clock.utcnow(),
    )


def _index(form: RewardForm, status: int = 200) -> Any:
    number = pages.page_number()
    rows, has_next = reads.page(
        db.session(), reads.all_rewards(), reads.REWARD_ID, number, pages.PAGE_SIZE
    )
    staff = current_staff()
    return (
        render_template(
            "ops/rewards.html",
            rewards=[reads.reward_view(row) for row in rows],
            form=form,
            may_edit=staff is not None and staff.role in EDIT_ROLES,
            number=number,
            has_next=has_next,
        ),
        status,
    )


@bp.get("")
@staff_required()
def index() -> Any:
    form = RewardForm()
    form.fulfilment_days.data = 14
    return _index(form)


@bp.post("")
@staff_required(*EDIT_ROLES)
def create() -> Any:
    form = RewardForm()
    if not form.validate_on_submit():
        return _index(form, 422)
    session = db.session()
    view = save_listing(session, None, form, None, clock.utcnow())
    if view is None:
        session.rollback()
        return _index(form, 422)
    _audit(session, "reward.created", view)
    session.commit()
    flash(_("Listed: %(name)s.", name=view.name), "success")
    return redirect(url_for("ops_rewards.index"), code=303)


def _edit(reward_id: str, form: RewardForm | None = None, status: int = 200) -> Any:
    view = reads.reward_view(reads.supplier_reward_row(db.session(), None, reward_id))
    if form is None:
        form = RewardForm()
        fill(form, view, current_app.config["COALITION_TIMEZONE"])
    return render_template("ops/reward.html", reward=view, form=form), status


@bp.get("/<reward_id>")
@staff_required(*EDIT_ROLES)
def edit(reward_id: str) -> Any:
    """One of the operator's own listings; a merchant's is not the operator's to change."""
    return _edit(reward_id)


@bp.post("/<reward_id>")
@staff_required(*EDIT_ROLES)
def update(reward_id: str) -> Any:
    form = RewardForm()
    if not form.validate_on_submit():
        return _edit(reward_id, form, 422)
    session = db.session()
    view = save_listing(session, None, form, reward_id, clock.utcnow())
    if view is None:
        session.rollback()
        return _edit(reward_id, form, 422)
    _audit(session, "reward.updated", view)
    session.commit()
    flash(_("Saved: %(name)s.", name=view.name), "success")
    return redirect(url_for("ops_rewards.edit", reward_id=reward_id), code=303)


# The coalition's own orders ------------------------------------------------------------------


def _orders_page(voucher_form: VoucherForm, status: int = 200) -> Any:
    return orders_page("ops/orders.html", None, voucher_form, status)


@bp.get("/orders")
@staff_required(*FULFIL_ROLES)
def orders() -> Any:
    """The orders of the coalition's own rewards, to fulfil (pending first)."""
    return _orders_page(VoucherForm())


@bp.post("/orders/<order_id>/fulfil")
@staff_required(*FULFIL_ROLES)
def fulfil_order(order_id: str) -> Any:
    session = db.session()
    try:
        order = services.fulfil_order(session, None, order_id, clock.utcnow())
    except CoalitionError as refusal:
        session.rollback()
        if refusal.status == 404:
            raise
        flash(refusal.detail, "error")
        return redirect(url_for("ops_rewards.orders"), code=303)
    _audit_order(session, "order.fulfilled", order.id)
    session.commit()
    flash(_("Order of %(name)s marked fulfilled.", name=order.reward_name), "success")
    return redirect(url_for("ops_rewards.orders"), code=303)


@bp.post("/vouchers")
@staff_required(*FULFIL_ROLES)
def accept_voucher() -> Any:
    form = VoucherForm()
    if not form.validate_on_submit():
        return _orders_page(form, 422)
    session = db.session()
    try:
        order = services.accept_voucher(session, None, form.code.data or "", clock.utcnow())
    except CoalitionError as refusal:
        session.rollback()
        words = {
            "not_found": _("No voucher of the coalition has this code."),
            "voucher_already_accepted": _("This voucher was accepted before."),
            "order_not_pending": _("This voucher's order was cancelled."),
        }
        form.code.errors = [*form.code.errors, words.get(refusal.code, refusal.detail)]
        return _orders_page(form, 409 if refusal.status == 409 else 422)
    _audit_order(session, "voucher.accepted", order.id)
    session.commit()
    flash(_("Voucher accepted: %(name)s.", name=order.reward_name), "success")
    return redirect(url_for("ops_rewards.orders"), code=303)


def _audit_order(session: Session, action: str, order_id: str) -> None:
    staff = current_staff()
    if staff is None:  # pragma: no cover - staff_required guards every caller
        raise AssertionError("a console page ran without staff")
    audit.record(
        session,
        staff.actor,
        action,
        "order",
        order_id,
        after={"status": "fulfilled"},
        now=clock.utcnow(),
    )
