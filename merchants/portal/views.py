"""The signed-in merchant's pages: the dashboard, transactions (a filtered page and its CSV),
members (look a card up, enrol one at the till) and API credentials (create, rotate, revoke).
Each reads through `merchants.portal_reads` inside the merchant's tenant and changes data only
through services."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date
from typing import Any
from urllib.parse import urlencode

from flask import (
    current_app,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from coalition import clock
from coalition.errors import CoalitionError, NotFound
from coalition.extensions import db
from coalition.members import reads as member_reads
from coalition.members import services as member_services
from coalition.oauth import clients as oauth_clients
from coalition.privacy import reads as privacy_reads
from coalition.web import pages
from merchants import charts, portal_reads, services
from merchants.forms import (
    AudienceForm,
    ClientForm,
    EnrolForm,
    LookupForm,
    PendingWindowForm,
    TransactionFilterForm,
)
from merchants.portal import formatting
from merchants.portal.face import bp, dashboard_panels, merchant_required, signed_in_merchant

# The dashboard -----------------------------------------------------------------------------


@bp.get("/", strict_slashes=False)
@merchant_required
def home() -> str:
    merchant = signed_in_merchant()
    now = clock.utcnow()
    session = db.session()
    figures = portal_reads.dashboard(session, merchant.id, now, formatting.zone())
    svg = charts.daily_svg(
        figures["days"],
        title=_("Points issued and redeemed, last 60 days"),
        issued_label=_("Issued"),
        redeemed_label=_("Redeemed"),
        day_label=lambda day: f"{day.day}.{day.month:02d}",
        empty_note=_("No points issued or redeemed in these 60 days"),
    )
    panels = [panel(session, merchant.id, now) for panel in dashboard_panels]
    return render_template(
        "portal/home.html",
        figures=figures,
        svg=svg,
        panels=panels,
        month=formatting.day(clock.business_date(now, formatting.zone()).replace(day=1)),
    )


# Transactions ------------------------------------------------------------------------------


def _filter(form: TransactionFilterForm) -> portal_reads.TransactionFilter | None:
    """The form's filter; None when its member names nobody (the list is then empty)."""
    member_account_id = None
    if form.member.data:
        try:
            member_account_id = member_services.find_member(
                db.session(), form.member.data.strip()
            ).account_id
        except NotFound:
            return None
    since: date | None = form.since.data
    until: date | None = form.until.data
    return portal_reads.TransactionFilter(
        since=since, until=until, type=form.type.data or None, member_account_id=member_account_id
    )


def _rows(lines: Any) -> list[dict[str, Any]]:
    return [
        {
            "id": line.public_id,
            "when": formatting.moment(line.created_at),
            "type": line.type,
            "points": line.points,
            "member": line.member,
            "amount": None
            if line.amount_minor is None
            else formatting.money(_major(line.amount_minor), line.currency or "EUR"),
            "external_id": line.external_id,
        }
        for line in lines
    ]


def _major(amount_minor: int) -> str:
    """Minor units as a decimal string of major ones (two digits: the coalition's currencies)."""
    sign = "-" if amount_minor < 0 else ""
    whole, cents = divmod(abs(amount_minor), 100)
    return f"{sign}{whole}.{cents:02d}"


@bp.get("/transactions")
@merchant_required
def transactions() -> str:
    merchant = signed_in_merchant()
    form = TransactionFilterForm(request.args)
    number = pages.page_number()
    rows: list[dict[str, Any]] = []
    has_next = False
    valid = form.validate()
    found = _filter(form) if valid else None
    if found is not None:
        lines, has_next = portal_reads.transactions_page(
            db.session(), merchant.id, found, number, pages.PAGE_SIZE, formatting.zone()
        )
        rows = _rows(lines)
    args = {k: v for k, v in request.args.items() if k != "page"}
    return render_template(
        "portal/transactions.html",
        form=form,
        rows=rows,
        number=number,
        has_next=has_next,
        has_previous=number > 1,
        filtered=any(args.values()),
        csv_url=url_for("portal.transactions_csv") + ("?" + urlencode(args) if args else ""),
    )


CSV_HEADER = ["id", "created_at", "type", "points", "member", "amount", "currency", "external_id"]


@bp.get("/transactions.csv")
@merchant_required
def transactions_csv() -> Response:
    """The same filter as the page, every row (at most portal_reads.CSV_LIMIT), streamed."""
    merchant = signed_in_merchant()
    form = TransactionFilterForm(request.args)
    found = _filter(form) if form.validate() else None
    session = db.session()
    zone = formatting.zone()

    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_HEADER)
        if found is not None:
            for count, line in enumerate(
                portal_reads.transactions_all(session, merchant.id, found, zone), 1
            ):
                writer.writerow(
                    [
                        line.public_id,
                        line.created_at.isoformat(),
                        line.type,
                        line.points,
                        line.member,
                        "" if line.amount_minor is None else _major(line.amount_minor),
                        line.currency or "",
                        line.external_id or "",
                    ]
                )
                if count % 500:
                    continue
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    response = Response(stream_with_context(lines()), mimetype="text/csv")
    response.headers["Content-Disposition"] = 'attachment; filename="transactions.csv"'
    return response


# Members -----------------------------------------------------------------------------------


@bp.get("/members")
@merchant_required
def members() -> str:
    merchant = signed_in_merchant()
    lookup = LookupForm(request.args)
    member = None
    lines: list[dict[str, Any]] = []
    if request.args and lookup.validate():
        session = db.session()
        card = (lookup.card.data or "").strip()
        try:
            member = member_reads.card_view(session, card, clock.utcnow())
            found = member_services.find_member(session, card)
        except NotFound:
            lookup.card.errors = [_("No member has this card.")]
        else:
            lines = _rows(portal_reads.member_lines(session, merchant.id, found.account_id))
    return render_template(
        "portal/members.html", lookup=lookup, member=member, lines=lines, enrol=EnrolForm()
    )


@bp.post("/members/enrol")
@merchant_required
def enrol() -> Any:
    merchant = signed_in_merchant()
    form = EnrolForm()
    if not form.validate_on_submit():
        return render_template(
            "portal/members.html", lookup=LookupForm(), member=None, lines=[], enrol=form
        ), 200
    session = db.session()
    try:
        new = member_services.register_member(
            session,
            now=clock.utcnow(),
            card_prefix=current_app.config["COALITION_CARD_PREFIX"],
            card_number=(form.card_number.data or "").strip() or None,
            email=form.email.data or None,
            phone=form.phone.data or None,
            name=form.name.data or None,
            enrolled_by_merchant_id=merchant.id,
        )
    except CoalitionError as error:
        session.rollback()
        messages = {
            "card_taken": (form.card_number, _("This card is already issued.")),
            "email_taken": (form.email, _("This email is already registered.")),
        }
        field, message = messages.get(
            error.code, (form.card_number, _("This is not one of the coalition's cards."))
        )
        field.errors = [message]
        return render_template(
            "portal/members.html", lookup=LookupForm(), member=None, lines=[], enrol=form
        ), 200
    session.commit()
    flash(_("Member enrolled. Card number %(card)s.", card=new.card_number), "success")
    return redirect(url_for("portal.members", card=new.card_number), code=303)


# Audience ----------------------------------------------------------------------------------


def _channel() -> tuple[AudienceForm, str]:
    form = AudienceForm(request.args)
    return form, (form.channel.data if form.validate() else "email")


@bp.get("/audience")
@merchant_required
def audience() -> str:
    """SPEC 2: the members who shopped here and agreed to be contacted by a channel and to have
    their contact shared, how many there are by each channel, a page of them and the CSV."""
    merchant = signed_in_merchant()
    form, channel = _channel()
    form.channel.data = channel
    session = db.session()
    counts = {c: privacy_reads.audience_count(session, merchant.id, c) for c in AUDIENCE_CHANNELS}
    number = pages.page_number()
    rows, has_next = privacy_reads.audience_page(
        session, merchant.id, channel, number, pages.PAGE_SIZE
    )
    return render_template(
        "portal/audience.html",
        form=form,
        channel=channel,
        counts=counts,
        rows=rows,
        number=number,
        has_next=has_next,
        has_previous=number > 1,
        csv_url=url_for("portal.audience_csv", channel=channel),
    )


AUDIENCE_CHANNELS = ("email", "sms", "post")
AUDIENCE_HEADER = ["member", "name", "email", "phone"]


@bp.get("/audience.csv")
@merchant_required
def audience_csv() -> Response:
    """The whole audience of a channel (at most privacy_reads.MAX_AUDIENCE_CSV), streamed."""
    merchant = signed_in_merchant()
    _, channel = _channel()
    session = db.session()

    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(AUDIENCE_HEADER)
        for count, line in enumerate(privacy_reads.audience_all(session, merchant.id, channel), 1):
            writer.writerow(
                [line["member"], _cell(line["name"]), _cell(line["email"]), line["phone"] or ""]
            )
            if count % 500:
                continue
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
        yield buffer.getvalue()

    response = Response(stream_with_context(lines()), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="audience-{channel}.csv"'
    response.headers["Cache-Control"] = "no-store"
    return response


def _cell(value: str | None) -> str:
    """Typed text as a CSV cell that a spreadsheet shows as text: one starting =, +, - or @
    would be run as a formula (CSV injection), so it gets a leading apostrophe. (Phone numbers
    are checked digits on the way in, and a leading + is theirs: they go as they are.)"""
    text = value or ""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


# API credentials ---------------------------------------------------------------------------


def _credentials_page(form: ClientForm, secret: dict[str, Any] | None = None) -> str:
    merchant = signed_in_merchant()
    rows = portal_reads.merchant_clients(db.session(), merchant.id)
    return render_template("portal/credentials.html", form=form, clients=rows, secret=secret)


@bp.get("/credentials")
@merchant_required
def credentials() -> str:
    return _credentials_page(ClientForm())


@bp.post("/credentials")
@merchant_required
def create_client() -> Any:
    merchant = signed_in_merchant()
    form = ClientForm()
    if not form.validate_on_submit():
        return _credentials_page(form), 200
    session = db.session()
    made = services.create_client(
        session,
        merchant.public_id,
        name=(form.name.data or "").strip(),
        scopes=form.scopes.data or [],
        redirect_uris=form.uris(),
        now=clock.utcnow(),
    )
    session.commit()
    flash(_("Client created. Copy its secret now: it is not shown again."), "success")
    return _credentials_page(ClientForm(formdata=None), secret=made), 201


@bp.post("/credentials/<client_id>/rotate")
@merchant_required
def rotate_client(client_id: str) -> Any:
    merchant = signed_in_merchant()
    session = db.session()
    made = oauth_clients.rotate_secret(session, client_id, clock.utcnow(), merchant_id=merchant.id)
    session.commit()
    flash(
        _(
            "New secret made. Copy it now: it is not shown again. The old one keeps working"
            " until %(when)s.",
            when=formatting.moment(made["previous_secret_expires_at"]),
        ),
        "success",
    )
    return _credentials_page(ClientForm(formdata=None), secret=made)


@bp.post("/credentials/<client_id>/revoke")
@merchant_required
def revoke_client(client_id: str) -> Response:
    merchant = signed_in_merchant()
    session = db.session()
    oauth_clients.revoke_client(session, client_id, clock.utcnow(), merchant_id=merchant.id)
    session.commit()
    flash(_("Client revoked: its secret and tokens no longer work."), "success")
    return redirect(url_for("portal.credentials"), code=303)


def _settings_page(form: PendingWindowForm, status: int = 200) -> tuple[str, int]:
    merchant = signed_in_merchant()
    window = services.pending_window(db.session(), merchant.id, clock.utcnow())
    if form.pending_days.data is None and not form.pending_days.errors:
        form.pending_days.data = window.pending_days
    return render_template("portal/settings.html", form=form, window=window), status


@bp.get("/settings")
@merchant_required
def settings() -> tuple[str, int]:
    """The programme's settings the merchant sets itself: its pending window (SPEC 2)."""
    return _settings_page(PendingWindowForm())


@bp.post("/settings")
@merchant_required
def save_settings() -> Any:
    merchant = signed_in_merchant()
    form = PendingWindowForm()
    if not form.validate_on_submit() or form.pending_days.data is None:
        return _settings_page(form, 422)
    session = db.session()
    try:
        services.set_pending_days(session, merchant.id, form.pending_days.data, now=clock.utcnow())
    except CoalitionError as refusal:
        session.rollback()
        form.pending_days.errors = [*form.pending_days.errors, refusal.detail]
        return _settings_page(form, 422)
    session.commit()
    flash(
        _(
            "Saved: points of purchases from now on are pending %(n)s days.",
            n=form.pending_days.data,
        )
        if form.pending_days.data
        else _("Saved: points of purchases from now on can be spent at once."),
        "success",
    )
    return redirect(url_for("portal.settings"), code=303)
