"""The signed-in merchant's segments, `/portal/segments` (SPEC 2, segments and targeted
offers): its segments with their counts, the form that defines one over its own customers
("Count" shows the live count without saving, "Save" saves and evaluates it), each segment's
page to change it, and deletion. Everything goes through `coalition.segments`, which names the
merchant in every query."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from coalition import clock
from coalition.extensions import db
from coalition.segments import pages as segment_pages
from coalition.segments import reads, services
from coalition.segments.forms import DeleteSegmentForm
from coalition.segments.services import Owner
from merchants.portal.face import bp, merchant_required, signed_in_merchant

bp.context_processor(lambda: {"criteria_words": segment_pages.criteria_words})


def _owner() -> Owner:
    return Owner(signed_in_merchant().id)


def _page(form: Any, outcome: Any = None, segment_id: str | None = None, status: int = 200) -> Any:
    session, now = db.session(), clock.utcnow()
    return (
        render_template(
            "portal/segments.html",
            form=form,
            outcome=outcome,
            segment_id=segment_id,
            **segment_pages.page(session, _owner(), now),
        ),
        status,
    )


def _submit(segment_id: str | None) -> Any:
    session, now = db.session(), clock.utcnow()
    form = segment_pages.form_for(session, _owner(), now)
    if not form.validate_on_submit():
        return _page(form, segment_id=segment_id, status=422)
    outcome = segment_pages.submit(
        session,
        _owner(),
        form,
        action=request.form.get("action", "save"),
        now=now,
        segment_id=segment_id,
    )
    if outcome.problems:
        session.rollback()
        return _page(form, outcome, segment_id, 422)
    if outcome.saved is None:
        return _page(form, outcome, segment_id)
    session.commit()
    flash(_("Segment saved."), "success")
    return redirect(url_for("portal.segments"), code=303)


@bp.get("/segments")
@merchant_required
def segments() -> Any:
    return _page(segment_pages.form_for(db.session(), _owner(), clock.utcnow()))


@bp.post("/segments")
@merchant_required
def create_segment() -> Any:
    return _submit(None)


@bp.get("/segments/<segment_id>")
@merchant_required
def segment(segment_id: str) -> Any:
    session, now = db.session(), clock.utcnow()
    found = reads.segment(session, _owner(), segment_id)
    form = segment_pages.form_for(session, _owner(), now)
    segment_pages.forms.fill(
        form, found["name"], found["definition"], segment_pages.minor_units(session, now)
    )
    return _page(form, segment_id=segment_id)


@bp.post("/segments/<segment_id>")
@merchant_required
def change_segment(segment_id: str) -> Any:
    return _submit(segment_id)


@bp.post("/segments/<segment_id>/delete")
@merchant_required
def delete_segment(segment_id: str) -> Response:
    form = DeleteSegmentForm()
    if form.validate_on_submit():
        services.remove(db.session(), _owner(), segment_id, now=clock.utcnow())
        db.session.commit()
        flash(_("Segment deleted."), "success")
    return redirect(url_for("portal.segments"), code=303)
