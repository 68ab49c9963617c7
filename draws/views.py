"""The draws' public page and the member's (SPEC 3.9). `/draws/{id}` (anyone): the prize, the
closing time, the seed's hash and the entries so far; once closed the seed, the entries list,
the winners and a "verify it yourself" program, with the list's exact bytes at
`/draws/{id}/entries.txt`. `/me/draws` (a signed-in member): the open draws with an "Enter"
button, and the member's own entries, pseudonym and result in each draw. The member pages join
the member site's blueprint (as `settlement.premium_views` does), behind its sign-in."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from babel import numbers as babel_numbers
from flask import Response, flash, redirect, render_template, url_for
from flask_babel import get_locale
from flask_babel import gettext as _

from coalition import clock, economics
from coalition.errors import InsufficientPoints
from coalition.extensions import db
from coalition.ledger.rows import Actor
from coalition.members.views import bp as member_site
from coalition.members.views import current_member, member_required
from coalition.web import pages
from draws import procedure, reads, services
from draws.forms import EnterDrawForm

bp = pages.face_blueprint("draw_pages", __name__, "/draws")
# Longer lists are offered as the file only.
MAX_LISTED = 1000


def money(value: dict[str, Any]) -> str:
    """An amount in minor units (`{"amount", "currency"}`) in the visitor's notation."""
    digits = economics.MINOR_UNIT_DIGITS.get(value["currency"], 2)
    return str(
        babel_numbers.format_currency(
            Decimal(value["amount"]).scaleb(-digits), value["currency"], locale=get_locale()
        )
    )


@bp.context_processor
def _helpers() -> dict[str, Any]:
    return {"money": money}


@bp.get("/<draw_id>")
def public_draw(draw_id: str) -> str:
    view = reads.draw(db.session(), draw_id, clock.utcnow())
    snippet = None
    if view.closed:
        assert view.seed is not None and view.entries_hash is not None
        snippet = procedure.snippet(
            view.seed, view.seed_hash, view.entries_hash, view.winners_count
        )
    return render_template("draws/draw.html", draw=view, snippet=snippet, max_listed=MAX_LISTED)


@bp.get("/<draw_id>/entries.txt")
def entries_file(draw_id: str) -> Response:
    """The closed entries list, byte for byte as it was hashed."""
    body = procedure.canonical(reads.canonical_entries(db.session(), draw_id))
    response = Response(body, mimetype="text/plain")
    response.headers["Content-Disposition"] = 'inline; filename="entries.txt"'
    return response


def _member_page(form: EnterDrawForm | None = None, status: int = 200) -> Any:
    member = current_member()
    assert member is not None
    session, now = db.session(), clock.utcnow()
    mine = reads.my_draws(session, member.id, now)
    page = render_template(
        "me/draws.html",
        open_draws=reads.open_draws(session, now),
        mine=mine,
        mine_by_draw={m.draw.id: m for m in mine},
        form=form or EnterDrawForm(formdata=None),
    )
    return page, status


@member_site.get("/draws")
@member_required
def draws_page() -> Any:
    return _member_page()


@member_site.post("/draws/<draw_id>/entries")
@member_required
def enter_draw(draw_id: str) -> Any:
    member = current_member()
    assert member is not None
    form = EnterDrawForm()
    if not form.validate_on_submit():
        return _member_page(form, 422)
    session = db.session()
    count = form.count.data or 1
    try:
        done = services.enter(
            session,
            draw_id=draw_id,
            member_id=member.id,
            entries=count,
            actor=Actor("member", member.public_id),
            now=clock.utcnow(),
        )
    except InsufficientPoints:
        session.rollback()
        flash(_("You do not have enough points for %(n)s entries.", n=count), "error")
        return _member_page(form, 422)
    except (services.DrawClosed, services.NoPaidEntries):
        session.rollback()
        flash(_("This draw takes no more entries with points."), "error")
        return _member_page(form, 409)
    session.commit()
    flash(
        _(
            "You are in: %(n)s entries for %(points)s points. You have %(mine)s paid entries "
            "in this draw.",
            n=done.entries,
            points=done.points,
            mine=done.my_paid_entries,
        ),
        "success",
    )
    return redirect(url_for("me.draws_page"), code=303)
