"""The operator console's draws (SPEC 3.9, `/ops/draws`): the list of draws with the form that
opens one, and each draw's page with its outcome and the "close now" button. Any staff may
open them. Opening and closing call `draws.services`, which write the audit log with the staff
as the actor."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from coalition import clock, economics
from coalition.errors import InvalidRequest
from coalition.extensions import db
from coalition.staff.views import current_staff, staff_required
from coalition.web import pages
from draws import reads, services
from draws.forms import CloseDrawForm, OpenDrawForm
from draws.views import money

bp = pages.face_blueprint("ops_draws", __name__, "/ops/draws")

bp.context_processor(lambda: {"money": money})

# The service's names for what the form calls otherwise.
FIELD_OF = {"free_entries": "partners"}


def _zone() -> ZoneInfo:
    return ZoneInfo(str(current_app.config["COALITION_TIMEZONE"]))


def _currency() -> str:
    return economics.terms_at(clock.utcnow(), session=db.session()).currency


def _open_form() -> OpenDrawForm:
    form = OpenDrawForm()
    form.partners.choices = [
        (public_id, name) for public_id, name in reads.merchant_choices(db.session())
    ]
    return form


def _index(form: OpenDrawForm, status: int = 200) -> Any:
    session = db.session()
    number = pages.page_number()
    rows, has_next = reads.page(session, number, pages.PAGE_SIZE, clock.utcnow())
    page = render_template(
        "ops/draws.html",
        rows=rows,
        form=form,
        number=number,
        has_next=has_next,
        currency=_currency(),
        zone=str(_zone()),
    )
    return page, status


@bp.get("")
@staff_required()
def index() -> Any:
    return _index(_open_form())


@bp.post("")
@staff_required()
def open_draw() -> Any:
    form = _open_form()
    if not form.validate_on_submit():
        return _index(form, 422)
    staff = current_staff()
    assert staff is not None
    currency = _currency()
    closes_at = form.closes_at.data
    assert isinstance(closes_at, datetime)
    free = None
    if form.partners.data or form.min_amount.data is not None:
        if not form.partners.data or form.min_amount.data is None:
            form.partners.errors = [_("Free entries need partners and a smallest purchase.")]
            return _index(form, 422)
        amount = Decimal(form.min_amount.data).scaleb(economics.MINOR_UNIT_DIGITS[currency])
        free = services.FreeEntries(form.partners.data, int(amount), currency)
    session = db.session()
    try:
        view = services.open_draw(
            session,
            prize=form.prize.data or "",
            entry_points=form.entry_points.data,
            closes_at=closes_at.replace(tzinfo=_zone()),
            winners_count=form.winners_count.data or 1,
            free=free,
            coalition_currency=currency,
            actor=staff.actor,
            now=clock.utcnow(),
        )
    except InvalidRequest as refusal:
        session.rollback()
        errors = refusal.extra.get("errors") or {}
        for name, why in errors.items():
            target = getattr(form, FIELD_OF.get(name, name), form.partners)
            target.errors = list(why)
        if not errors:
            flash(refusal.detail, "error")
        return _index(form, 422)
    session.commit()
    flash(_("The draw is open. Its seed hash is public from now on."), "success")
    return redirect(url_for("ops_draws.detail", draw_id=view.id), code=303)


@bp.get("/<draw_id>")
@staff_required()
def detail(draw_id: str) -> Any:
    view = reads.draw(db.session(), draw_id, clock.utcnow())
    return render_template("ops/draw.html", draw=view, form=CloseDrawForm(), zone=str(_zone()))


@bp.post("/<draw_id>/close")
@staff_required()
def close(draw_id: str) -> Response:
    form = CloseDrawForm()
    if not form.validate_on_submit():
        return redirect(url_for("ops_draws.detail", draw_id=draw_id), code=303)
    staff = current_staff()
    assert staff is not None
    session = db.session()
    services.close(session, draw_id, now=clock.utcnow(), actor=staff.actor)
    session.commit()
    flash(_("The draw is closed: its seed and winners are public."), "success")
    return redirect(url_for("ops_draws.detail", draw_id=draw_id), code=303)
