"""The portal dashboard's second tab, Insights (SPEC 3.9): the signed-in merchant's figures in a
range of business dates, with the cohort triangle, the concentration curve and the net position
by month drawn as SVG, and each as a table too. Merchants may not import settlement, which
these figures read, so the page joins the portal's blueprint from here (as settlement.portal's
do; create_app imports this module before it registers the blueprint)."""

from __future__ import annotations

from flask import render_template, request

from coalition.extensions import db
from insights import pages, reads, zone
from insights.forms import RangeForm
from merchants.portal.face import bp, merchant_required, signed_in_merchant


@bp.get("/insights")
@merchant_required
def insights() -> tuple[str, int]:
    merchant = signed_in_merchant()
    form = RangeForm(request.args)
    span = pages.window_of(form)
    if span is None:
        return render_template(
            "portal/insights.html", form=form, found=None, **pages.helpers()
        ), 422
    found = reads.figures(db.session(), merchant.id, span, zone.name())
    return (
        render_template(
            "portal/insights.html",
            form=form,
            found=found,
            **pages.helpers(),
            svg=pages.pictures(found),
        ),
        200,
    )
