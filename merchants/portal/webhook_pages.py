"""The signed-in merchant's webhooks, `/portal/webhooks` (SPEC 3.6, 3.9): its endpoints with
their last delivery's outcome, a form to add one (the secret shown once, after creating it), each
endpoint's page (details, turn off and on, rotate the secret, send a test event, delete with a
confirmation, the delivery log with a "redeliver" button per event), and a notice, here and on
the dashboard, naming an endpoint the platform turned off (410 Gone, five days failing). Every
change goes through `webhooks.services`, every read through `webhooks.reads`, in the merchant's
tenant. Works without JavaScript: plain forms, each with its CSRF token."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import current_app, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from coalition import clock
from coalition.errors import CoalitionError
from coalition.extensions import db
from merchants.forms import WebhookEndpointForm
from merchants.portal.face import bp, dashboard_panels, merchant_required, signed_in_merchant
from webhooks import reads, services
from webhooks.catalogue import SUBSCRIBABLE


def _disabled_panel(session: Session, merchant_id: int, now: datetime) -> dict[str, Any]:
    return {
        "kind": "webhooks_disabled",
        "endpoints": reads.disabled_by_the_engine(session, merchant_id, now),
    }


dashboard_panels.append(_disabled_panel)


def _form(formdata: Any = ...) -> WebhookEndpointForm:
    form = WebhookEndpointForm() if formdata is ... else WebhookEndpointForm(formdata=formdata)
    form.events.choices = [(t, t) for t in SUBSCRIBABLE]
    return form


def _list_page(form: WebhookEndpointForm, status: int = 200, created: Any = None) -> Any:
    merchant = signed_in_merchant()
    session, now = db.session(), clock.utcnow()
    return (
        render_template(
            "portal/webhooks.html",
            endpoints=reads.endpoints(session, merchant.id, now),
            last=reads.last_attempts(session, merchant.id),
            disabled=reads.disabled_by_the_engine(session, merchant.id, now),
            form=form,
            created=created,
            limit=services.MAX_ENDPOINTS,
        ),
        status,
    )


@bp.get("/webhooks")
@merchant_required
def webhooks() -> Any:
    return _list_page(_form())


@bp.post("/webhooks")
@merchant_required
def create_webhook() -> Any:
    merchant = signed_in_merchant()
    form = _form()
    if not form.validate_on_submit():
        return _list_page(form, 422)
    session = db.session()
    try:
        made = services.create_endpoint(
            session,
            merchant.id,
            url=(form.url.data or "").strip(),
            events=form.events.data or None,
            description=form.description.data,
            allow_private=bool(current_app.config["WEBHOOKS_ALLOW_PRIVATE"]),
            now=clock.utcnow(),
        )
    except CoalitionError as refusal:
        session.rollback()
        form.url.errors = [*form.url.errors, refusal.detail]
        return _list_page(form, 422)
    session.commit()
    flash(_("Endpoint added. Copy its signing secret now: it is not shown again."), "success")
    return _endpoint_page(made.endpoint.id, secret=made.secret, status=201)


def _endpoint_page(public_id: str, *, secret: str | None = None, status: int = 200) -> Any:
    merchant = signed_in_merchant()
    session, now = db.session(), clock.utcnow()
    endpoint = reads.endpoint(session, merchant.id, public_id, now)
    row = reads.endpoint_row(session, merchant.id, public_id)
    return (
        render_template(
            "portal/webhook.html",
            endpoint=endpoint,
            log=reads.recent_attempts(session, merchant.id, row.id),
            secret=secret,
        ),
        status,
    )


@bp.get("/webhooks/<endpoint_id>")
@merchant_required
def webhook(endpoint_id: str) -> Any:
    return _endpoint_page(endpoint_id)


def _back(endpoint_id: str) -> Response:
    return redirect(url_for("portal.webhook", endpoint_id=endpoint_id), code=303)


@bp.post("/webhooks/<endpoint_id>/enable")
@merchant_required
def enable_webhook(endpoint_id: str) -> Response:
    return _switch(endpoint_id, True)


@bp.post("/webhooks/<endpoint_id>/disable")
@merchant_required
def disable_webhook(endpoint_id: str) -> Response:
    return _switch(endpoint_id, False)


def _switch(endpoint_id: str, enabled: bool) -> Response:
    merchant = signed_in_merchant()
    session = db.session()
    services.update_endpoint(
        session,
        merchant.id,
        endpoint_id,
        {"enabled": enabled},
        allow_private=bool(current_app.config["WEBHOOKS_ALLOW_PRIVATE"]),
        now=clock.utcnow(),
    )
    session.commit()
    if enabled:
        flash(_("Endpoint turned on: the events that waited are being sent."), "success")
    else:
        flash(_("Endpoint turned off: events wait until you turn it on again."), "success")
    return _back(endpoint_id)


@bp.post("/webhooks/<endpoint_id>/rotate")
@merchant_required
def rotate_webhook(endpoint_id: str) -> Any:
    merchant = signed_in_merchant()
    session = db.session()
    made = services.rotate_secret(session, merchant.id, endpoint_id, clock.utcnow())
    session.commit()
    flash(
        _(
            "New signing secret made. Copy it now: it is not shown again. For 24 hours every"
            " delivery is signed with the old and the new secret, so you can switch."
        ),
        "success",
    )
    return _endpoint_page(endpoint_id, secret=made.secret)


@bp.post("/webhooks/<endpoint_id>/test")
@merchant_required
def test_webhook(endpoint_id: str) -> Response:
    merchant = signed_in_merchant()
    session = db.session()
    try:
        queued = services.send_test_event(session, merchant.id, endpoint_id, clock.utcnow())
    except services.EndpointDisabled:
        session.rollback()
        flash(_("Turn the endpoint on to send it a test event."), "error")
        return _back(endpoint_id)
    session.commit()
    flash(
        _("Test event %(id)s sent: its delivery shows in the log below.", id=queued.event),
        "success",
    )
    return _back(endpoint_id)


@bp.post("/webhooks/<endpoint_id>/redeliver/<event_id>")
@merchant_required
def redeliver_webhook(endpoint_id: str, event_id: str) -> Response:
    merchant = signed_in_merchant()
    session = db.session()
    try:
        services.redeliver(session, merchant.id, event_id, endpoint_id, clock.utcnow())
    except services.EndpointDisabled:
        session.rollback()
        flash(_("Turn the endpoint on to redeliver to it."), "error")
        return _back(endpoint_id)
    session.commit()
    flash(_("Event %(id)s will be delivered again now.", id=event_id), "success")
    return _back(endpoint_id)


@bp.get("/webhooks/<endpoint_id>/delete")
@merchant_required
def confirm_delete_webhook(endpoint_id: str) -> str:
    merchant = signed_in_merchant()
    endpoint = reads.endpoint(db.session(), merchant.id, endpoint_id, clock.utcnow())
    return render_template("portal/webhook_delete.html", endpoint=endpoint)


@bp.post("/webhooks/<endpoint_id>/delete")
@merchant_required
def delete_webhook(endpoint_id: str) -> Response:
    merchant = signed_in_merchant()
    session = db.session()
    services.delete_endpoint(session, merchant.id, endpoint_id, clock.utcnow())
    session.commit()
    flash(_("Endpoint deleted: nothing more is sent to it."), "success")
    return redirect(url_for("portal.webhooks"), code=303)
