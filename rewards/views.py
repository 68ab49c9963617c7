"""The catalogue in the member site, `/me/rewards` and `/me/orders` (SPEC 3.9): browse what may
be ordered now (filtered by category, partner and price), order with a button, see one's orders
with their voucher codes and cancel a pending one. These pages join the member site's blueprint
(create_app imports this module before registering it) behind its sign-in, as the member's own
tenant. Also the rewards' images, `/rewards/<id>/image`, public like the catalogue itself."""

from __future__ import annotations

import secrets
from typing import Any

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response as Redirect

from coalition import clock, idempotency, tenancy
from coalition.errors import CoalitionError
from coalition.extensions import db
from coalition.members.views import bp, current_member, member_required
from coalition.web import pages
from coalition.web.access import public
from rewards import formatting, reads, services
from rewards.forms import ButtonForm, OrderForm

images_bp = Blueprint("reward_images", __name__, template_folder="templates")
images_bp.app_context_processor(formatting.helpers)


@images_bp.get("/rewards/<reward_id>/image")
@public()
def image(reward_id: str) -> Redirect:
    """A reward's image, as uploaded (its type sniffed at upload), cached by its digest."""
    found = reads.image(db.session(), reward_id)
    response = Response(found.data, mimetype=found.content_type)
    response.set_etag(found.digest)
    response.headers["Cache-Control"] = "public, max-age=86400"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response.make_conditional(request)


def _member() -> Any:
    member = current_member()
    if member is None:  # pragma: no cover - member_required guards every caller
        raise AssertionError("a member page ran without a member")
    return member


def _filters() -> dict[str, Any]:
    args = request.args
    max_points = args.get("max_points", "")
    supplier = args.get("supplier", "")
    return {
        "category": (args.get("category") or "").strip().lower()[:60] or None,
        "supplier": supplier if supplier == "operator" or supplier.startswith("mer_") else None,
        "max_points": int(max_points) if max_points.isdigit() and len(max_points) < 12 else None,
    }


@bp.get("/rewards")
@member_required
def rewards_page() -> str:
    session, now = db.session(), clock.utcnow()
    filters = _filters()
    number = pages.page_number()
    rows, has_next = reads.page(
        session, reads.catalogue(now, **filters), reads.REWARD_ID, number, pages.PAGE_SIZE
    )
    return render_template(
        "me/rewards.html",
        rewards=[reads.reward_view(row) for row in rows],
        filters=filters,
        categories=reads.categories(session, now),
        suppliers=reads.suppliers(session, now),
        number=number,
        has_next=has_next,
        form=OrderForm(),
    )


@bp.post("/rewards/<reward_id>/order")
@member_required
def order_reward(reward_id: str) -> Redirect:
    member = _member()
    form = OrderForm()
    if not form.validate_on_submit():
        flash(_("Choose a quantity from 1 to %(n)d.", n=services.MAX_QUANTITY), "error")
        return redirect(url_for("me.rewards_page"), code=303)
    session, now = db.session(), clock.utcnow()
    quantity = form.quantity.data or 1

    def place() -> tuple[int, dict[str, Any]]:
        order = services.place_order(
            session, member_id=member.id, reward_id=reward_id, quantity=quantity, now=now
        )
        return 201, {"reward_name": order.reward_name, "voucher_code": order.voucher_code}

    try:
        # The form's request id is an idempotency key in the member's own scope (decision 293).
        outcome = idempotency.execute(
            session,
            scope=tenancy.Tenant.member(member.account_id).setting,
            key=f"{form.request_id.data or secrets.token_urlsafe(16)}:{reward_id}"[:200],
            request_fingerprint=idempotency.fingerprint("order", reward_id, quantity),
            operation=place,
            now=now,
        )
    except CoalitionError as refusal:
        session.rollback()
        flash(_refusal(refusal.code, refusal.detail), "error")
        return redirect(url_for("me.rewards_page"), code=303)
    session.commit()
    if outcome.status >= 400:
        flash(_refusal(outcome.body.get("code", ""), outcome.body.get("detail", "")), "error")
        return redirect(url_for("me.rewards_page"), code=303)
    order = outcome.body
    if order["voucher_code"]:
        flash(
            _(
                "Ordered: %(name)s. Your voucher code is %(code)s; show it at the till.",
                name=order["reward_name"],
                code=order["voucher_code"],
            ),
            "success",
        )
    else:
        flash(_("Ordered: %(name)s.", name=order["reward_name"]), "success")
    return redirect(url_for("me.orders_page"), code=303)


def _refusal(code: str, detail: str) -> str:
    words = {
        "insufficient_points": _("You do not have enough points for this reward."),
        "out_of_stock": _("Sorry, this reward has just run out."),
        "reward_unavailable": _("This reward cannot be ordered now."),
        "order_not_pending": _("This order is already fulfilled or cancelled."),
        "idempotency_conflict": _("This page was out of date: please order again."),
    }
    return words.get(code, detail)


@bp.get("/orders")
@member_required
def orders_page() -> str:
    member = _member()
    number = pages.page_number()
    rows, has_next = reads.page(
        db.session(),
        reads.member_orders(member.account_id),
        reads.ORDER_ID,
        number,
        pages.PAGE_SIZE,
    )
    return render_template(
        "me/orders.html",
        orders=[reads.order_view(row) for row in rows],
        number=number,
        has_next=has_next,
        form=ButtonForm(),
    )


@bp.post("/orders/<order_id>/cancel")
@member_required
def cancel_order(order_id: str) -> Redirect:
    member = _member()
    if not ButtonForm().validate_on_submit():
        return redirect(url_for("me.orders_page"), code=303)
    session = db.session()
    try:
        order = services.cancel_order(
            session, member_account_id=member.account_id, order_id=order_id, now=clock.utcnow()
        )
    except CoalitionError as refusal:
        session.rollback()
        if refusal.status == 404:
            raise
        flash(_refusal(refusal.code, refusal.detail), "error")
        return redirect(url_for("me.orders_page"), code=303)
    session.commit()
    flash(
        _(
            "Order cancelled: %(points)s points are back in your balance.",
            points=order.points,
        ),
        "success",
    )
    return redirect(url_for("me.orders_page"), code=303)
