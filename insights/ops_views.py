"""The operator's insights (`/ops/insights`): the coalition's figures in a range, one partner's
through the picker, the liability now, breakage, and each partner's balance of trade. Money
pages: admin and finance, as settlement's reports."""

from __future__ import annotations

from typing import Any

from flask import render_template, request

from coalition import clock
from coalition.extensions import db
from coalition.staff.views import staff_required
from coalition.web import pages as faces
from insights import pages, reads, zone
from insights.forms import OpsRangeForm

bp = faces.face_blueprint("ops_insights", __name__, "/ops/insights")

MONEY_ROLES = ("admin", "finance")


@bp.get("/", strict_slashes=False)
@staff_required(*MONEY_ROLES)
def index() -> tuple[str, int]:
    session = db.session()
    form = OpsRangeForm(request.args)
    form.merchant.choices = [("", "—"), *reads.partners(session)]
    span = pages.window_of(form, operator=True)
    if span is None:
        return render_template("ops/insights.html", form=form, found=None, **pages.helpers()), 422
    found: dict[str, Any] = reads.operator_view(
        session, span, zone.name(), form.merchant.data or None, clock.utcnow()
    )
    return (
        render_template(
            "ops/insights.html",
            form=form,
            found=found,
            **pages.helpers(),
            svg=pages.pictures(found["coalition"]),
            partner_svg=pages.pictures(found["partner"]) if found["partner"] else None,
        ),
        200,
    )
