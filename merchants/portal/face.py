"""The merchant portal's blueprint and its session: who is signed in, as which tenant.

A merchant signs in with its application's email and password; the session keeps its public id.
Every page after the sign-in enters the merchant's tenant (row-level security) and its reads
filter by the merchant as well: the two walls of the API. A merchant that is not active (pending,
refused, suspended) sees its standing, never the dashboard. Other packages (settlement) add
their pages to this blueprint and their figures to the dashboard (`dashboard_panels`): merchants
imports nothing of settlement."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from flask import g, redirect, request, session, url_for
from sqlalchemy.orm import Session

from coalition import tenancy
from coalition.extensions import db
from coalition.web import pages
from merchants import portal_reads
from merchants.portal_reads import PortalMerchant

F = TypeVar("F", bound=Callable[..., Any])

FACE = "portal"
MERCHANT_KEY = "portal_merchant"

bp = pages.face_blueprint(FACE, __name__, "/portal", template_folder="../templates")

# Figures other packages add to the dashboard: each is called with the session (in the
# merchant's tenant), the merchant's id and now, and returns a dict the dashboard template shows.
DashboardPanel = Callable[[Session, int, datetime], dict[str, Any]]
dashboard_panels: list[DashboardPanel] = []


@bp.before_request
def _forget_the_last_request() -> None:
    g.pop("portal_merchant", None)
    g.pop("csrf_token", None)


def current_merchant() -> PortalMerchant | None:
    return g.get("portal_merchant")


def session_merchant() -> PortalMerchant | None:
    """The merchant this session is signed in as (whatever its status); None when signed out
    or when the merchant is gone."""
    public_id = session.get(MERCHANT_KEY)
    if not isinstance(public_id, str):
        return None
    found = portal_reads.merchant_by_public_id(db.session(), public_id)
    if found is None:
        pages.end_session()
    return found


def merchant_required(view: F) -> F:
    """A page of a signed-in, active merchant, acting as its tenant. Signed out: the sign-in
    page; not active: its standing."""

    @functools.wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        merchant = session_merchant()
        if merchant is None:
            return redirect(url_for("portal.sign_in", next=request.full_path.rstrip("?")))
        if merchant.status != "active":
            return redirect(url_for("portal.standing"))
        tenancy.enter(db.session(), tenancy.Tenant.merchant(merchant.id))
        g.portal_merchant = merchant
        return view(*args, **kwargs)

    return guarded  # type: ignore[return-value]


def signed_in_merchant() -> PortalMerchant:
    merchant = current_merchant()
    if merchant is None:  # pragma: no cover - merchant_required guards every caller
        raise AssertionError("a portal page ran without a merchant")
    return merchant


@bp.context_processor
def _helpers() -> dict[str, Any]:
    from merchants.portal import formatting

    return {"portal_merchant": current_merchant(), **formatting.helpers()}
