"""The signed-in merchant's earn rules, `/portal/earn-rules` (SPEC 2, 3.9): the rules in force
and their versions, a form that writes a new version (validated by the API's schema), the
operator's monthly issuance cap with what has been used of it this month, and a preview: what a
sample basket earns now, part by part, computed by the purchase's own code
(`merchants.purchases.earned_for`)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from wtforms.fields.choices import SelectChoice

from coalition import clock, economics
from coalition.errors import CoalitionError
from coalition.extensions import db
from merchants import budgets, campaign_reports, purchases, rules, targeting
from merchants.portal import formatting
from merchants.portal.face import bp, merchant_required, signed_in_merchant
from merchants.rules_forms import CampaignForm, PreviewForm, RulesForm, describe


def _campaign_form(merchant_id: int, formdata: Any = None) -> CampaignForm:
    form = CampaignForm(formdata=formdata) if formdata is not None else CampaignForm()
    form.segment.choices = [
        SelectChoice("", _("No segment")),
        *(SelectChoice(*found) for found in targeting.own_segments(db.session(), merchant_id)),
    ]
    return form


def _zone() -> ZoneInfo:
    return ZoneInfo(current_app.config["COALITION_TIMEZONE"])


def _page(
    form: RulesForm,
    preview: PreviewForm | None = None,
    status: int = 200,
    campaign_form: CampaignForm | None = None,
) -> Any:
    merchant = signed_in_merchant()
    session, now = db.session(), clock.utcnow()
    in_force = rules.in_force_at(session, merchant.id, now)
    segments = dict(targeting.own_segments(session, merchant.id))
    terms = economics.terms_at(now, merchant.id, session)
    preview = preview or _preview_form(terms)
    earned, spent = None, None
    if request.args and preview.validate():
        basket = preview.basket(terms.minor_units)
        if basket is not None:
            spent = formatting.money(Decimal(basket["amount"]) / terms.minor_units, terms.currency)
            purchase = {**basket, "currency": terms.currency, "occurred_at": now}
            earned = purchases.earned_for(
                purchase, in_force.rules, terms, preview.tier.data, {}, now
            )
    return render_template(
        "portal/earn_rules.html",
        form=form,
        campaign_form=campaign_form or _campaign_form(merchant.id, formdata=None),
        campaigns=list(zip(in_force.rules.campaigns, in_force.document["campaigns"], strict=True)),
        segments=segments,
        preview=preview,
        earned=earned,
        spent=spent,
        in_force=in_force,
        versions=rules.history(session, merchant.id),
        budget=budgets.usage(session, merchant.id, now),
        currency=terms.currency,
        bounds=terms.earn_rate_bounds,
    ), status


def _preview_form(terms: economics.Terms) -> PreviewForm:
    form = PreviewForm(request.args)
    form.tier.choices = [(tier.name, f"{tier.name} (x{tier.multiplier})") for tier in terms.tiers]
    if not form.tier.data or form.tier.data == "None":
        form.tier.data = terms.tiers[0].name
    return form


@bp.get("/earn-rules")
@merchant_required
def earn_rules() -> Any:
    form = RulesForm(formdata=None)
    merchant = signed_in_merchant()
    form.fill(dict(rules.in_force_at(db.session(), merchant.id, clock.utcnow()).document))
    return _page(form)


@bp.post("/earn-rules")
@merchant_required
def save_earn_rules() -> Any:
    merchant = signed_in_merchant()
    form = RulesForm()
    document = form.document() if form.validate_on_submit() else None
    if document is None:
        return _page(form, status=422)
    session = db.session()
    try:
        saved = rules.put(
            session,
            merchant_id=merchant.id,
            document=document,
            actor_id=f"portal:{merchant.public_id}",
            now=clock.utcnow(),
        )
    except CoalitionError as refusal:
        session.rollback()
        errors = refusal.extra.get("errors", {})
        if "campaigns" in errors:
            form.campaigns.errors = [describe(errors["campaigns"])]
        else:
            form.base_rate.errors = list(errors.get("base_rate", [refusal.detail]))
        return _page(form, status=422)
    session.commit()
    flash(
        _(
            "Version %(version)s of your earn rules is in force from %(when)s.",
            version=saved.version,
            when=formatting.moment(saved.effective_from),
        ),
        "success",
    )
    return redirect(url_for("portal.earn_rules"), code=303)


def _rules_form(merchant_id: int) -> RulesForm:
    form = RulesForm(formdata=None)
    form.fill(dict(rules.in_force_at(db.session(), merchant_id, clock.utcnow()).document))
    return form


@bp.post("/earn-rules/campaigns")
@merchant_required
def save_campaign() -> Any:
    """A campaign, with its targeting, added to the rules in force (or in place of the one of
    its name): a new version."""
    merchant = signed_in_merchant()
    session, now = db.session(), clock.utcnow()
    form = _campaign_form(merchant.id, formdata=request.form)
    stored = dict(rules.in_force_at(session, merchant.id, now).document)
    document = form.document(stored, _zone()) if form.validate_on_submit() else None
    if document is None:
        return _page(_rules_form(merchant.id), status=422, campaign_form=form)
    try:
        saved = rules.put(
            session,
            merchant_id=merchant.id,
            document=document,
            actor_id=f"portal:{merchant.public_id}",
            now=now,
        )
    except CoalitionError as refusal:
        session.rollback()
        errors = refusal.extra.get("errors", {})
        form.show(errors, len(document["campaigns"]) - 1)
        return _page(_rules_form(merchant.id), status=422, campaign_form=form)
    session.commit()
    flash(
        _(
            "Version %(version)s of your earn rules is in force from %(when)s.",
            version=saved.version,
            when=formatting.moment(saved.effective_from),
        ),
        "success",
    )
    return redirect(url_for("portal.earn_rules"), code=303)


@bp.get("/earn-rules/campaigns/<name>")
@merchant_required
def campaign_report(name: str) -> Any:
    """A targeted campaign's report: its targeted and control groups, and the uplift."""
    merchant = signed_in_merchant()
    found = campaign_reports.report(db.session(), merchant.id, name, clock.utcnow())
    return render_template("portal/campaign_report.html", report=found)
