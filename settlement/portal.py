"""Settlement's part of the merchant portal (SPEC 3.9): the merchant's monthly statements (the
list, each one's page, CSV and PDF), its Stripe account (the onboarding link, and whether Stripe
said payouts are enabled), and the dashboard's provisional net position. Merchants may not
import settlement, so these pages join the portal's blueprint from here (create_app imports this
module before it registers the blueprint). Each reads in the merchant's tenant, which the
portal's guard entered, and names the merchant in its query as well: another merchant's
statement is not found."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from flask import current_app, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from coalition import clock, tenancy
from coalition.database import table
from coalition.errors import CoalitionError, NotFound
from coalition.extensions import db
from coalition.web import pages
from merchants.portal.face import bp, dashboard_panels, merchant_required, signed_in_merchant
from settlement import disputes, payments, provisional, renditions, statements
from settlement.charts import daily_points_svg
from settlement.forms import DISPUTE_STATUS_LABELS, NOTE_LABELS, DisputeForm
from settlement.gateway import GatewayError, gateway
from settlement.models import StripeEvent

stripe_events = table(StripeEvent)
RECENT_ACCOUNT_EVENTS = 500


def _net_panel(session: Session, merchant_id: int, now: datetime) -> dict[str, Any]:
    position = provisional.net_position(session, merchant_id, now)
    return {
        "kind": "net_position",
        "today": position.today,
        "month": position.month,
        "currency": position.currency,
    }


dashboard_panels.append(_net_panel)


def payouts_enabled(session: Session, account_id: str | None) -> bool | None:
    """What Stripe last said of the account's payouts (its `account.updated` events); None when
    it has said nothing yet."""
    if not account_id:
        return None
    with tenancy.acting_as(tenancy.SYSTEM, session):
        rows = session.execute(
            select(stripe_events.c.payload)
            .where(stripe_events.c.type == "account.updated")
            .order_by(stripe_events.c.created.desc())
            .limit(RECENT_ACCOUNT_EVENTS)
        ).scalars()
        for payload in rows:
            account = ((payload or {}).get("data") or {}).get("object") or {}
            if account.get("id") == account_id or payload.get("account") == account_id:
                return bool(account.get("payouts_enabled"))
    return None


@bp.get("/statements")
@merchant_required
def statements_list() -> str:
    merchant = signed_in_merchant()
    session = db.session()
    number = pages.page_number()
    query = (
        statements.listing()
        .where(statements.statements.c.merchant_id == merchant.id)
        .order_by(statements.statements.c.month.desc(), statements.statements.c.id.desc())
        .limit(pages.PAGE_SIZE + 1)
        .offset((number - 1) * pages.PAGE_SIZE)
    )
    rows = session.execute(query).all()
    shown = [statements.render(session, row) for row in rows[: pages.PAGE_SIZE]]
    return render_template(
        "portal/statements.html",
        statements=shown,
        number=number,
        has_next=len(rows) > pages.PAGE_SIZE,
        has_previous=number > 1,
        stripe_account=merchant.stripe_account_id,
        payouts=payouts_enabled(session, merchant.stripe_account_id),
        major=_major,
    )


def _major(value: dict[str, Any]) -> Decimal:
    from settlement.money import major

    return Decimal(major(value))


def _statement(statement_id: str) -> dict[str, Any]:
    merchant = signed_in_merchant()
    return statements.statement_view(db.session(), statement_id, merchant.id)


@bp.get("/statements/<statement_id>")
@merchant_required
def statement(statement_id: str) -> Any:
    return _statement_page(statement_id, DisputeForm())


def _statement_page(statement_id: str, form: DisputeForm, status: int = 200) -> Any:
    view = _statement(statement_id)
    merchant = signed_in_merchant()
    session = db.session()
    days = [(_day(d["date"]), int(d["issued"]), int(d["redeemed"])) for d in view["days"] or ()]
    svg = (
        daily_points_svg(
            days, title=_("Points issued and redeemed per day, %(month)s", month=view["month"])
        )
        if days
        else None
    )
    issued_at = datetime.fromisoformat(view["issued_at"])
    page = render_template(
        "portal/statement.html",
        statement=view,
        svg=svg,
        major=_major,
        form=form,
        disputes=disputes.statement_disputes(session, view["id"], merchant.id),
        disputable=disputes.is_disputable(issued_at, clock.utcnow()),
        disputable_until=disputes.disputable_until(issued_at),
        dispute_statuses=DISPUTE_STATUS_LABELS,
        note_kinds=NOTE_LABELS,
    )
    return page, status


@bp.post("/statements/<statement_id>/disputes")
@merchant_required
def dispute_line(statement_id: str) -> Any:
    """The "Dispute" button of a statement line: the line's number and a reason (SPEC 3.10)."""
    form = DisputeForm()
    if not form.validate_on_submit():
        return _statement_page(statement_id, form, 422)
    merchant = signed_in_merchant()
    session = db.session()
    try:
        view = disputes.raise_dispute(
            session,
            merchant.id,
            statement_id,
            form.line.data or 0,
            form.reason.data or "",
            clock.utcnow(),
        )
    except NotFound:
        raise
    except CoalitionError as refusal:
        session.rollback()
        errors = refusal.extra.get("errors") or {}
        if errors:  # next to the line's form
            form.reason.errors = [why for field in errors.values() for why in field]
        else:  # the window has closed, or the line is disputed already: for the whole page
            flash(refusal.detail, "error")
        return _statement_page(statement_id, form, refusal.status)
    session.commit()
    flash(
        _(
            "Line %(n)s is disputed (%(id)s). Staff will answer it.",
            n=view["line"]["number"],
            id=view["id"],
        ),
        "success",
    )
    return redirect(url_for("portal.statement", statement_id=statement_id), code=303)


def _day(text: str) -> Any:
    from datetime import date

    return date.fromisoformat(text)


def _download(body: bytes, mimetype: str, filename: str) -> Response:
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@bp.get("/statements/<statement_id>.csv")
@merchant_required
def statement_csv(statement_id: str) -> Response:
    view = _statement(statement_id)
    return _download(renditions.statement_csv(view).encode(), "text/csv", f"{view['id']}.csv")


@bp.get("/statements/<statement_id>.pdf")
@merchant_required
def statement_pdf(statement_id: str) -> Response:
    view = _statement(statement_id)
    return _download(renditions.statement_pdf(view), "application/pdf", f"{view['id']}.pdf")


@bp.post("/stripe-account")
@merchant_required
def stripe_account() -> Response:
    """To Stripe, to fill in the connected account the coalition pays into (made first)."""
    merchant = signed_in_merchant()
    session = db.session()
    back = url_for("portal.statements_list", _external=True)
    try:
        made = payments.start_onboarding(
            session, gateway(current_app), merchant.public_id, back, back
        )
    except (GatewayError, NotFound):
        session.rollback()
        flash(_("Stripe did not answer. Try again in a few minutes."), "error")
        return redirect(url_for("portal.statements_list"), code=303)
    session.commit()
    return redirect(made["url"], code=303)
