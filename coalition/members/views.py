"""The member site, `/me` (SPEC 3.9): join, sign in and out, one balance across every shop with
what each shop's points make of it and what expires when, the history, the rotating code as
a QR code with its digits, and privacy (SPEC 2): the consents with their history, the download
of all the member's data, and erasure.

A member signs in with the email and password of the OAuth consent page (`credentials`), and the
session keeps the member's public id under the same key, so one sign-in serves both. Every page
after the sign-in acts as the member's own tenant (`Tenant.member`: its own transactions only)
and every read is scoped by the member's account as well: a member sees only its own."""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import segno
from babel import dates as babel_dates
from babel import numbers as babel_numbers
from flask import current_app, flash, g, redirect, render_template, request, session, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from limits import parse
from werkzeug.wrappers import Response

from coalition import clock, economics, tenancy
from coalition.errors import CoalitionError
from coalition.extensions import db
from coalition.ledger import expiry
from coalition.members import attributes, codes, credentials, premium, reads
from coalition.members.forms import AboutMeForm, ConsentForm, EraseForm, JoinForm, SignInForm
from coalition.members.services import EmailTaken, FoundMember
from coalition.privacy import reads as privacy_reads
from coalition.privacy import services as privacy
from coalition.privacy.texts import TEXTS
from coalition.web import pages

F = TypeVar("F", bound=Callable[..., Any])

bp = pages.face_blueprint("me", __name__, "/me", static_folder="static")

FACE = "me"
MEMBER_KEY = credentials.SESSION_KEY  # shared with /oauth/authorize: one sign-in serves both
NEXT_KEY = "me_next"


@bp.before_request
def _forget_the_last_request() -> None:
    """Nothing of another request's member or CSRF token is taken for this one's, even where
    requests share an app context (a test's)."""
    g.pop("me_member", None)
    g.pop("csrf_token", None)


def current_member() -> FoundMember | None:
    return g.get("me_member")


def _session_member() -> FoundMember | None:
    """The member this session is signed in as, now acting as the member's own tenant; None
    when signed out, or when the member is gone or blocked since."""
    public_id = session.get(MEMBER_KEY)
    if not isinstance(public_id, str):
        return None
    found = reads.signed_in(db.session(), public_id)
    if found is None:
        pages.end_session()
        return None
    tenancy.enter(db.session(), tenancy.Tenant.member(found.account_id))
    return found


def member_required(view: F) -> F:
    """A page of a signed-in member; a signed-out visitor goes to the sign-in page and comes
    back after it."""

    @functools.wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        member = _session_member()
        if member is None:
            return redirect(url_for("me.sign_in", next=request.full_path.rstrip("?")))
        g.me_member = member
        return view(*args, **kwargs)

    return guarded  # type: ignore[return-value]


def _safe_next(target: str | None) -> str:
    """A page of the member site, or its home: never another site."""
    if target and target.startswith("/me") and not target.startswith("//"):
        return target
    return url_for("me.home")


# What the pages show, in the visitor's language ---------------------------------------------


def _zone() -> str:
    return str(current_app.config["COALITION_TIMEZONE"])


def _points(number: int) -> str:
    return babel_numbers.format_decimal(number, locale=get_locale())


def _day(day: date) -> str:
    return babel_dates.format_date(day, "medium", locale=get_locale())


def _moment(moment: datetime) -> str:
    """A moment in the coalition's time zone: its date and time of day."""
    local = moment.astimezone(ZoneInfo(_zone()))
    time_of_day = babel_dates.format_time(local, "short", locale=get_locale())
    return f"{_day(local.date())} {time_of_day}"


def _money(value: dict[str, Any]) -> str:
    """An amount in minor units (`{"amount", "currency"}`) in the visitor's notation."""
    digits = economics.MINOR_UNIT_DIGITS.get(value["currency"], 2)
    return babel_numbers.format_currency(
        Decimal(value["amount"]).scaleb(-digits), value["currency"], locale=get_locale()
    )


def _percent(part: int, whole: int) -> int:
    """How much of `whole` `part` is, in whole percent from 0 to 100 (integers, no float)."""
    return 100 if whole <= 0 else max(0, min(100, part * 100 // whole))


def _grouped(card_number: str) -> str:
    """A card number in groups of four digits, as it is printed and read out."""
    return " ".join(card_number[i : i + 4] for i in range(0, len(card_number), 4))


def _type_words() -> dict[str, str]:
    return {
        "earn": _("Earned"),
        "redeem": _("Spent"),
        "refund": _("Taken back for a return"),
        "reversal": _("Given back"),
        "expiry": _("Expired"),
    }


# Points leave the balance with these types; the others bring points in.
OUTGOING = frozenset({"redeem", "refund", "expiry"})


@bp.context_processor
def _helpers() -> dict[str, Any]:
    return {
        "me_member": current_member(),
        "points": _points,
        "day": _day,
        "card_number": _grouped,
        "money": _money,
    }


# Joining, signing in and out ----------------------------------------------------------------


@bp.get("/", strict_slashes=False)
@member_required
def home() -> str:
    member = current_member()
    assert member is not None
    now = clock.utcnow()
    overview = reads.overview(db.session(), member, now, _zone())
    expiring = [
        {"day": clock.business_date(line["expires_at"], _zone()), "points": line["points"]}
        for line in overview["expiring"]
    ]
    progress = overview["tier_progress"]
    reached = (
        _percent(progress["qualifying_spend"]["amount"], progress["next_threshold"]["amount"])
        if progress["next_threshold"]
        else 100
    )
    membership = premium.current(db.session(), member.id, now)
    premium_until = (
        None
        if membership is None
        else _day(membership["ends_at"].astimezone(ZoneInfo(_zone())).date())
    )
    # The soonest expiry, told up front once it is as near as the `points.expiring` notice.
    first = overview["expiring"][0] if overview["expiring"] else None
    soon = None
    if first is not None and first["expires_at"] <= now + expiry.NOTICE_AHEAD:
        soon = {
            "points": first["points"],
            "day": babel_dates.format_skeleton("MMMMd", expiring[0]["day"], locale=get_locale()),
        }
    return render_template(
        "me/home.html",
        soon=soon,
        overview=overview,
        expiring=expiring,
        progress=progress,
        reached=reached,
        membership=membership,
        premium_until=premium_until,
    )


def _signup_allowed() -> None:
    """Joining is limited per address as the API's sign-up is (RATE_LIMIT_SIGNUP)."""
    if not current_app.config["RATELIMIT_ENABLED"]:
        return
    limiter = current_app.extensions["coalition.limiter"]
    rate = parse(current_app.config["RATE_LIMIT_SIGNUP"])
    if not limiter.hit(rate, "signup", FACE, request.remote_addr or "-"):
        raise pages.TooManySignins("too many sign-ups from this address")


@bp.route("/join", methods=["GET", "POST"])
def join() -> Any:
    if request.method == "GET" and _session_member() is not None:
        return redirect(url_for("me.home"))
    form = JoinForm()
    if not form.validate_on_submit():
        return render_template("me/join.html", form=form)
    _signup_allowed()
    session_ = db.session()
    try:
        new = credentials.join(
            session_,
            now=clock.utcnow(),
            card_prefix=current_app.config["COALITION_CARD_PREFIX"],
            email=form.email.data or "",
            password=form.password.data or "",
            name=form.name.data or None,
        )
    except EmailTaken:
        session_.rollback()
        form.email.errors = [_("This email is already registered. Sign in instead.")]
        return render_template("me/join.html", form=form), 200
    session_.commit()
    pages.renew_session(**{MEMBER_KEY: new.public_id})
    flash(_("Welcome! Your card number is %(card)s.", card=_grouped(new.card_number)), "success")
    return redirect(url_for("me.home"), code=303)


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in() -> Any:
    form = SignInForm()
    if request.method == "GET":
        target = _safe_next(request.args.get("next"))
        if _session_member() is not None:  # signed in already, here or on the consent page
            return redirect(target)
        session[NEXT_KEY] = target
    if not form.validate_on_submit():
        return render_template("me/sign_in.html", form=form)
    email = form.email.data or ""
    password = form.password.data or ""
    member = pages.check_password(
        FACE, email, lambda: credentials.authenticate(db.session(), email, password)
    )
    if member is None:
        return render_template("me/sign_in.html", form=form), 200
    pages.signin_succeeded(FACE, email)
    target = _safe_next(session.get(NEXT_KEY))
    pages.renew_session(**{MEMBER_KEY: member.public_id})
    return redirect(target, code=303)


@bp.post("/sign-out")
def sign_out() -> Response:
    pages.end_session()
    flash(_("You are signed out."), "info")
    return redirect(url_for("me.sign_in"), code=303)


# History and the code -----------------------------------------------------------------------


@bp.get("/history")
@member_required
def history() -> str:
    member = current_member()
    assert member is not None
    number = pages.page_number()
    lines, has_next = reads.history(db.session(), member.account_id, number, pages.PAGE_SIZE)
    words = _type_words()
    rows = [
        {
            "when": _moment(line["created_at"]),
            "shop": None if line["merchant"] is None else line["merchant"]["name"],
            "type": words.get(line["type"], line["type"]),
            "points": -line["points"] if line["type"] in OUTGOING else line["points"],
        }
        for line in lines
    ]
    return render_template(
        "me/history.html", rows=rows, number=number, has_next=has_next, has_previous=number > 1
    )


def qr_svg(payload: str, title: str) -> str:
    """A QR code as inline SVG: presentation attributes only (no style), so the page's CSP
    allows it; a full-size QR code (not Micro QR), which every scanner reads."""
    svg: str = segno.make(payload, error="m", micro=False).svg_inline(
        scale=1, omitsize=True, title=title, light="#fff", svgclass="qr", lineclass=None
    )
    return svg.replace("<svg ", '<svg role="img" ', 1)


@bp.get("/code")
@member_required
def code() -> str:
    """The rotating code (SPEC 2) as a QR code and its digits. The QR code carries the card
    number and the code, 22 digits, so one scan gives a till both; a till without a scanner
    types the card and the digits. When the code's step ends, static/code.js swaps the next one
    in; without JavaScript the page reloads itself then (`<meta http-equiv="refresh">` inside
    `<noscript>`: only a browser without scripts applies it; WCAG 2.2.1 excepts a time limit
    that is essential, as the code's life is, but axe-core flags every timed refresh)."""
    member = current_member()
    assert member is not None
    now = clock.utcnow()
    current = reads.current_code(db.session(), member.id, now)
    seconds_left = max(math.ceil((current["expires_at"] - now).total_seconds()), 1)
    picture = qr_svg(
        member.card_number + current["code"],
        _("QR code of your card and your code %(code)s", code=current["code"]),
    )
    return render_template(
        "me/code.html",
        code=current["code"],
        card=_grouped(member.card_number),
        svg=picture,
        seconds_left=seconds_left,
        step_seconds=codes.STEP_SECONDS,
    )


# Privacy: consents, the download of one's data, erasure ---------------------------------------


def _purpose_words() -> dict[str, str]:
    return {
        "email": _("Offers by email"),
        "sms": _("Offers by text message"),
        "post": _("Offers by post"),
        "sharing": _("Sharing my contact details with partners"),
        "profiling": _("Offers chosen for me"),
    }


def _source_words(source: str, client_id: str | None) -> str:
    if source == "me":
        return _("This site")
    return _("A partner's app (%(client)s)", client=client_id)


@bp.route("/about", methods=["GET", "POST"])
@member_required
def about_page() -> Any:
    """What the member tells about itself (birth date, household, interests, region), each
    optional; said plainly: used for offers only with the profiling consent."""
    member = current_member()
    assert member is not None
    session_ = db.session()
    form = AboutMeForm()
    form.interests.choices = [(slug, str(label)) for slug, label in attributes.INTERESTS.items()]
    form.region.choices = [("", _("Not said"))] + [
        (slug, str(label)) for slug, label in attributes.REGIONS.items()
    ]
    if form.validate_on_submit():
        now = clock.utcnow()
        try:
            attributes.set_attributes(
                session_,
                member.id,
                {
                    "birth_date": form.birth_date.data,
                    "household_size": form.household_size.data,
                    "interests": list(form.interests.data or []) or None,
                    "region": form.region.data or None,
                },
                now=now,
                today=clock.business_date(now, _zone()),
            )
        except CoalitionError as refused:
            for name, messages in refused.extra.get("errors", {}).items():
                form[name].errors = list(messages)
        else:
            session_.commit()
            flash(_("Saved."), "success")
            return redirect(url_for("me.about_page"), code=303)
    elif request.method == "GET":
        given = attributes.attributes_of(session_, member.id)
        form.birth_date.data = given["birth_date"]
        form.household_size.data = given["household_size"]
        form.interests.data = given["interests"] or []
        form.region.data = given["region"] or ""
    profiling = privacy_reads.current_consents(session_, member.id).get("profiling")
    return render_template(
        "me/about.html", form=form, profiling=profiling is not None and profiling.granted
    )


@bp.route("/privacy", methods=["GET", "POST"])
@member_required
def privacy_page() -> Any:
    """The five consents as boxes labelled with their texts, saved together; below them every
    change, newest first, and the ways to take one's data away or erase it."""
    member = current_member()
    assert member is not None
    session_ = db.session()
    form = ConsentForm()
    if form.validate_on_submit():
        changed = privacy.set_consents(
            session_,
            member.id,
            {purpose: bool(form[purpose].data) for purpose in TEXTS},
            source=privacy.ME,
            now=clock.utcnow(),
        )
        session_.commit()
        flash(
            _("Your choices are saved.") if changed else _("Nothing changed."),
            "success" if changed else "info",
        )
        return redirect(url_for("me.privacy_page"), code=303)
    view = privacy_reads.consents_view(session_, member.id)
    if request.method == "GET":
        for line in view["consents"]:
            form[line["purpose"]].data = line["granted"]
    for purpose, text in TEXTS.items():
        form[purpose].label.text = str(text.text)
    purposes = _purpose_words()
    history = [
        {
            "when": _moment(line["at"]),
            "purpose": purposes[line["purpose"]],
            "granted": line["granted"],
            "version": line["text_version"],
            "source": _source_words(line["source"], line["client_id"]),
        }
        for line in reversed(view["history"])
    ]
    return render_template(
        "me/privacy.html",
        form=form,
        purposes=purposes,
        consents=view["consents"],
        history=history,
    )


@bp.get("/export.json")
@member_required
def export() -> Response:
    """All the member's data as one JSON document, downloaded: the same as the API's."""
    member = current_member()
    assert member is not None
    now = clock.utcnow()
    document = privacy_reads.export(db.session(), member.id, now)
    body = json.dumps(document, default=_json_value, ensure_ascii=False, indent=2)
    response = Response(body, mimetype="application/json")
    day = clock.business_date(now, _zone()).isoformat()
    response.headers["Content-Disposition"] = f'attachment; filename="my-data-{day}.json"'
    response.headers["Cache-Control"] = "no-store"
    return response


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


@bp.route("/erase", methods=["GET", "POST"])
@member_required
def erase() -> Any:
    """Erasure, after the member types its email and ticks the box: everything goes at once,
    and the member is signed out."""
    member = current_member()
    assert member is not None
    session_ = db.session()
    profile = reads.profile(session_, member.id, clock.utcnow())
    balance = reads.points(session_, member.id, clock.utcnow(), _zone())
    form = EraseForm()
    if form.validate_on_submit():
        typed = (form.email.data or "").strip().lower()
        if not profile["email"] or typed != profile["email"]:
            form.email.errors = [_("This is not the email address of your membership.")]
        else:
            done = privacy.erase(session_, member.id, source=privacy.ME, now=clock.utcnow())
            session_.commit()
            if done.email:
                pages.signin_succeeded(FACE, done.email)  # forget its sign-in failures too
            pages.end_session()
            flash(_("Your membership is erased. Goodbye, and thank you."), "info")
            return redirect(url_for("me.sign_in"), code=303)
    return render_template("me/erase.html", form=form, balance=balance)
