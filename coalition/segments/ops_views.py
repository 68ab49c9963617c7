"""The operator console's segments (`/ops/segments`): the coalition-wide segments with their
counts, the form that defines one ("Count" shows the live count without saving, "Save" saves
and evaluates it), each segment's page to change it, and deletion. Any staff may open them; every
change is audited with the staff as the actor (through `segments.services`)."""

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
from coalition.staff.views import current_staff, staff_required
from coalition.web import pages

bp = pages.face_blueprint("ops_segments", __name__, "/ops/segments")
bp.context_processor(lambda: {"criteria_words": segment_pages.criteria_words})

OPERATOR = Owner(None)


def _page(form: Any, outcome: Any = None, segment_id: str | None = None, status: int = 200) -> Any:
    session, now = db.session(), clock.utcnow()
    return (
        render_template(
            "ops/segments.html",
            form=form,
            outcome=outcome,
            segment_id=segment_id,
            **segment_pages.page(session, OPERATOR, now),
        ),
        status,
    )


def _submit(segment_id: str | None) -> Any:
    session, now = db.session(), clock.utcnow()
    form = segment_pages.form_for(session, OPERATOR, now)
    if not form.validate_on_submit():
        return _page(form, segment_id=segment_id, status=422)
    staff = current_staff()
    assert staff is not None
    action = request.form.get("action", "save")
    outcome = segment_pages.submit(
        session,
        OPERATOR,
        form,
        action=action,
        now=now,
        segment_id=segment_id,
        actor=staff.actor,
    )
    if outcome.problems:
        session.rollback()
        return _page(form, outcome, segment_id, 422)
    if outcome.saved is None:
        return _page(form, outcome, segment_id)
    session.commit()
    flash(_("Segment saved."), "success")
    return redirect(url_for("ops_segments.index"), code=303)


@bp.get("")
@staff_required()
def index() -> Any:
    return _page(segment_pages.form_for(db.session(), OPERATOR, clock.utcnow()))


@bp.post("")
@staff_required()
def create() -> Any:
    return _submit(None)


@bp.get("/<segment_id>")
@staff_required()
def edit(segment_id: str) -> Any:
    session, now = db.session(), clock.utcnow()
    segment = reads.segment(session, OPERATOR, segment_id)
    form = segment_pages.form_for(session, OPERATOR, now)
    segment_pages.forms.fill(
        form, segment["name"], segment["definition"], segment_pages.minor_units(session, now)
    )
    return _page(form, segment_id=segment_id)


@bp.post("/<segment_id>")
@staff_required()
def change(segment_id: str) -> Any:
    return _submit(segment_id)


@bp.post("/<segment_id>/delete")
@staff_required()
def delete(segment_id: str) -> Response:
    form = DeleteSegmentForm()
    if form.validate_on_submit():
        staff = current_staff()
        assert staff is not None
        services.remove(db.session(), OPERATOR, segment_id, now=clock.utcnow(), actor=staff.actor)
        db.session.commit()
        flash(_("Segment deleted."), "success")
    return redirect(url_for("ops_segments.index"), code=303)
