"""The signed-in merchant's rewards, `/portal/rewards` and `/portal/orders` (SPEC 3.9): its
listings with a form to add one and a page to change each (its image uploaded there), the orders
of its rewards with a "Fulfilled" button, and the till's form to accept a voucher. Every change
goes through `rewards.services`, every read through `rewards.reads`, in the merchant's tenant."""

from __future__ import annotations

from typing import Any

from flask import current_app, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from coalition import clock
from coalition.errors import CoalitionError
from coalition.extensions import db
from coalition.web import pages
from merchants.portal.face import bp, merchant_required, signed_in_merchant
from rewards import reads, services
from rewards.forms import RewardForm, VoucherForm, fill, save_listing
from rewards.pages import orders_page


def _list_page(form: RewardForm, status: int = 200) -> Any:
    merchant = signed_in_merchant()
    number = pages.page_number()
    rows, has_next = reads.page(
        db.session(), reads.own_rewards(merchant.id), reads.REWARD_ID, number, pages.PAGE_SIZE
    )
    return (
        render_template(
            "portal/rewards.html",
            rewards=[reads.reward_view(row) for row in rows],
            form=form,
            number=number,
            has_next=has_next,
            now=clock.utcnow(),
        ),
        status,
    )


@bp.get("/rewards")
@merchant_required
def rewards() -> Any:
    form = RewardForm()
    form.fulfilment_days.data = 14
    return _list_page(form)


@bp.post("/rewards")
@merchant_required
def create_reward() -> Any:
    merchant = signed_in_merchant()
    form = RewardForm()
    if not form.validate_on_submit():
        return _list_page(form, 422)
    session = db.session()
    view = save_listing(session, merchant.id, form, None, clock.utcnow())
    if view is None:
        session.rollback()
        return _list_page(form, 422)
    session.commit()
    flash(_("Listed: %(name)s.", name=view.name), "success")
    return redirect(url_for("portal.rewards"), code=303)


def _edit_page(reward_id: str, form: RewardForm | None = None, status: int = 200) -> Any:
    merchant = signed_in_merchant()
    view = reads.reward_view(reads.supplier_reward_row(db.session(), merchant.id, reward_id))
    if form is None:
        form = RewardForm()
        fill(form, view, current_app.config["COALITION_TIMEZONE"])
    return render_template("portal/reward.html", reward=view, form=form), status


@bp.get("/rewards/<reward_id>")
@merchant_required
def reward(reward_id: str) -> Any:
    return _edit_page(reward_id)


@bp.post("/rewards/<reward_id>")
@merchant_required
def update_reward(reward_id: str) -> Any:
    merchant = signed_in_merchant()
    form = RewardForm()
    if not form.validate_on_submit():
        return _edit_page(reward_id, form, 422)
    session = db.session()
    view = save_listing(session, merchant.id, form, reward_id, clock.utcnow())
    if view is None:
        session.rollback()
        return _edit_page(reward_id, form, 422)
    session.commit()
    flash(_("Saved: %(name)s.", name=view.name), "success")
    return redirect(url_for("portal.reward", reward_id=reward_id), code=303)


def _orders_page(voucher_form: VoucherForm, status: int = 200) -> Any:
    merchant = signed_in_merchant()
    return orders_page("portal/orders.html", merchant.id, voucher_form, status)


@bp.get("/orders")
@merchant_required
def orders() -> Any:
    return _orders_page(VoucherForm())


@bp.post("/orders/<order_id>/fulfil")
@merchant_required
def fulfil_order(order_id: str) -> Response:
    merchant = signed_in_merchant()
    session = db.session()
    try:
        order = services.fulfil_order(session, merchant.id, order_id, clock.utcnow())
    except CoalitionError as refusal:
        session.rollback()
        if refusal.status == 404:
            raise
        flash(refusal.detail, "error")
        return redirect(url_for("portal.orders"), code=303)
    session.commit()
    flash(_("Order of %(name)s marked fulfilled.", name=order.reward_name), "success")
    return redirect(url_for("portal.orders"), code=303)


@bp.post("/vouchers")
@merchant_required
def accept_voucher() -> Any:
    merchant = signed_in_merchant()
    form = VoucherForm()
    if not form.validate_on_submit():
        return _orders_page(form, 422)
    session = db.session()
    try:
        order = services.accept_voucher(session, merchant.id, form.code.data or "", clock.utcnow())
    except CoalitionError as refusal:
        session.rollback()
        words = {
            "not_found": _("No voucher of yours has this code."),
            "voucher_already_accepted": _("This voucher was accepted before."),
            "order_not_pending": _("This voucher's order was cancelled."),
        }
        form.code.errors = [*form.code.errors, words.get(refusal.code, refusal.detail)]
        return _orders_page(form, 422 if refusal.status != 409 else 409)
    session.commit()
    flash(_("Voucher accepted: %(name)s.", name=order.reward_name), "success")
    return redirect(url_for("portal.orders"), code=303)
