"""The member's premium page, `/me/premium` (SPEC 2, 3.9): the offer (a year's price, the earn
multiplier, and what it would have added to the member's last twelve months), the membership in
force and its end, and "Buy", which sends the member to a Stripe Checkout Session
(`settlement.premium.buy`). The core may not import settlement, so this page joins the member
site's blueprint from here (create_app imports this module before it registers the blueprint),
behind the member site's own sign-in; it reads only the signed-in member's memberships."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from babel import dates as babel_dates
from babel import numbers as babel_numbers
from flask import current_app, flash, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_wtf import FlaskForm

from coalition import clock, economics
from coalition.extensions import db
from coalition.members import premium, reads
from coalition.members.services import FoundMember
from coalition.members.views import bp, current_member, member_required
from settlement import business_days
from settlement import premium as premium_payments
from settlement.gateway import GatewayError, gateway


class BuyForm(FlaskForm):
    """The "Buy" button: a form for its CSRF token only."""


def _money(amount_minor: int, currency: str) -> str:
    units = Decimal(amount_minor).scaleb(-economics.MINOR_UNIT_DIGITS[currency])
    return str(babel_numbers.format_currency(units, currency, locale=get_locale()))


def _day(moment: datetime) -> str:
    local = moment.astimezone(ZoneInfo(business_days.zone()))
    return str(babel_dates.format_date(local.date(), "medium", locale=get_locale()))


def _render(member: FoundMember, form: BuyForm, status: int = 200) -> Any:
    session = db.session()
    now = clock.utcnow()
    terms = economics.coalition_terms(session, business_days.today(now))
    offer = terms.premium
    found = premium.status(session, member.id, now)
    try:
        premium.next_period(session, member.id, now, offer)
        can_buy = True  # a first year, a renewal, or the payment of one already started
    except premium.AlreadyPremium:
        can_buy = False
    earned = premium.earned_in_year(session, member.account_id, now)
    configured = gateway(current_app).configured
    page = render_template(
        "me/premium.html",
        form=form,
        price=_money(offer.price_minor, terms.currency),
        multiplier=offer.multiplier.normalize(),
        reminder_days=offer.reminder_days,
        earned=earned,
        extra=premium.extra_points(earned, offer.multiplier),
        current=found["current"],
        upcoming=found["next"],
        ended=found["ended"],
        can_buy=can_buy and configured,
        configured=configured,
        when=_day,
        money=_money,
    )
    return page, status


@bp.get("/premium")
@member_required
def premium_page() -> Any:
    member = current_member()
    assert member is not None
    if request.args.get("paid"):
        flash(
            _("Thank you. Your membership starts as soon as Stripe confirms the payment."), "info"
        )
    elif request.args.get("cancelled"):
        flash(_("The payment was cancelled: nothing was charged."), "info")
    return _render(member, BuyForm())


@bp.post("/premium")
@member_required
def buy_premium() -> Any:
    member = current_member()
    assert member is not None
    form = BuyForm()
    if not form.validate_on_submit():
        return _render(member, form, 400)
    session = db.session()
    gw = gateway(current_app)
    if not gw.configured:
        flash(_("Payments are not available right now. Please try again later."), "error")
        return _render(member, form, 503)
    email = reads.profile(session, member.id, clock.utcnow())["email"]
    try:
        checkout = premium_payments.buy(
            session,
            gw,
            member,
            email,
            clock.utcnow(),
            success_url=url_for("me.premium_page", paid=1, _external=True),
            cancel_url=url_for("me.premium_page", cancelled=1, _external=True),
        )
    except premium.AlreadyPremium:
        session.rollback()
        flash(_("You cannot buy this period twice: you are already a premium member."), "error")
        return _render(member, form, 409)
    except GatewayError:
        session.rollback()
        flash(
            _("The payment service did not answer. Nothing was charged; please try again."),
            "error",
        )
        return _render(member, form, 503)
    if checkout.url is None:
        flash(_("Your payment is received; the membership starts in a moment."), "info")
        return redirect(url_for("me.premium_page"), code=303)
    return redirect(checkout.url, code=303)
