"""The OAuth 2 endpoints (SPEC 3.2): token, authorize (the member signs in and consents),
revoke, introspect, and the server metadata.

/oauth/token, /oauth/revoke and /oauth/introspect answer Authlib's RFC 6749 error bodies
(`{"error": "invalid_client", ...}`), which is what OAuth clients parse. /oauth/authorize is a
server-rendered page: a sign-in form (rate-limited per address), then a consent page; its forms
carry a CSRF token (Flask-WTF's, checked here rather than by a global CSRFProtect, which would
also guard the JSON API)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import limits
from authlib.oauth2.rfc6749 import OAuth2Error
from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    session,
)
from flask_wtf.csrf import generate_csrf, validate_csrf
from werkzeug.wrappers import Response as BaseResponse
from wtforms import ValidationError

from coalition import tenancy
from coalition.extensions import db
from coalition.members import credentials
from coalition.oauth import lookups
from coalition.oauth import server as oauth
from coalition.oauth.cli import ops
from coalition.web.access import public

bp = Blueprint("oauth", __name__, template_folder="templates")

EXTENSION = "coalition.oauth"
# The signed-in member's public id, in the signed session cookie (shared with the member site).
SESSION_MEMBER = credentials.SESSION_KEY
# What each member scope lets the merchant's app do, in the member's words (SPEC 3.2).
SCOPE_WORDS = {
    "balance:read": "See your points balance, the points about to expire and your history",
    "redeem": "Spend your points: redemptions, reward orders and draw entries",
    "consents:write": "Change whether partners may send you offers and see your contact details",
    "profile:write": "Change what you tell about yourself: birth date, household, interests",
    "account:delete": "Erase your membership: your details, your card and your points",
}
# No `form-action`: browsers apply it to the redirect back to the app after consent too.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def init_app(app: Flask) -> None:
    """What the OAuth server needs per app: its Authlib server (plain http allowed only in
    development and testing, see `server.TransportCheckedRequest`), a session cookie fit for
    the sign-in, and the `coalition ops` commands."""
    environment = app.config["COALITION_ENV"]
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=environment == "production",
    )
    app.extensions[EXTENSION] = oauth.AuthorizationServer(
        allow_http=environment in ("development", "testing")
    )
    app.cli.add_command(ops)


def authorization_server() -> oauth.AuthorizationServer:
    server: oauth.AuthorizationServer = current_app.extensions[EXTENSION]
    return server


@bp.before_request
def _as_the_system() -> None:
    # The server's own look-ups (a client by id, a token or code by digest) cross tenants.
    tenancy.enter(db.session(), tenancy.SYSTEM)


def _oauth_answer(call: Callable[[oauth.AuthorizationServer], Response]) -> Response:
    """Authlib's answer, errors included, after committing what it wrote (a replayed code's
    revocations are written even though the request is refused)."""
    server = authorization_server()
    try:
        response = call(server)
    except OAuth2Error as error:  # raised before Authlib's own handling: insecure transport
        response = server.handle_error_response(None, error)
    db.session.commit()
    return response


@bp.post("/oauth/token")
@public("RATE_LIMIT_CLIENT")
def token() -> Response:
    return _oauth_answer(lambda server: server.create_token_response())


@bp.post("/oauth/revoke")
@public("RATE_LIMIT_CLIENT")
def revoke() -> Response:
    return _oauth_answer(lambda server: server.create_endpoint_response("revocation"))


@bp.post("/oauth/introspect")
@public("RATE_LIMIT_CLIENT")
def introspect() -> Response:
    return _oauth_answer(lambda server: server.create_endpoint_response("introspection"))


@bp.get("/.well-known/oauth-authorization-server")
@public("RATE_LIMIT_CLIENT")
def server_metadata() -> Response:
    return jsonify(oauth.metadata(request.url_root.rstrip("/")))


def _page(template: str, status: int = 200, **context: Any) -> Response:
    response = make_response(render_template(template, **context), status)
    response.headers.update(PAGE_HEADERS)
    return response


def _problem_page(status: int, title: str, message: str, detail: str | None = None) -> Response:
    return _page("oauth/error.html", status, title=title, message=message, detail=detail)


def _signed_in_member() -> oauth.Member | None:
    public_id = session.get(SESSION_MEMBER)
    if not isinstance(public_id, str):
        return None
    return oauth.find_member(db.session(), public_id)


def _sign_in_allowed() -> tuple[bool, int]:
    """Count a sign-in attempt from this address (RATE_LIMIT_SIGNIN). Returns whether it may
    go ahead and, if not, the seconds until it may."""
    if not current_app.config["RATELIMIT_ENABLED"]:
        return True, 0
    limiter = current_app.extensions["coalition.limiter"]
    limit = limits.parse(current_app.config["RATE_LIMIT_SIGNIN"])
    keys = ("oauth-signin", request.remote_addr or "-")
    if limiter.hit(limit, *keys):
        return True, 0
    reset_at = limiter.get_window_stats(limit, *keys).reset_time
    return False, max(int(reset_at - time.time()) + 1, 1)


@bp.route("/oauth/authorize", methods=["GET", "POST"])
@public()  # viewing the page is not limited; sign-in attempts are, per address, below
def authorize() -> BaseResponse:
    server = authorization_server()
    member = _signed_in_member()
    try:
        grant = server.get_consent_grant(end_user=member)
    except OAuth2Error as error:
        if error.redirect_uri:  # the client and its redirect URI are known good: tell the app
            return server.handle_error_response(None, error)
        # Never redirect to a URI the client did not register (RFC 6749 4.1.2.1).
        return _problem_page(
            400,
            "This sign-in link does not work",
            "The app that sent you here asked for something this service cannot give. "
            "Go back to the app and try again, or tell the shop.",
            error.get_error_description(),
        )
    except ValueError:
        # Authlib refuses to word an error whose description would quote characters that
        # RFC 6749 forbids there (a redirect URI of control or non-ASCII characters, say): the
        # request is as bad as any other, and answered alike, without quoting it.
        return _problem_page(
            400,
            "This sign-in link does not work",
            "The app that sent you here asked for something this service cannot give. "
            "Go back to the app and try again, or tell the shop.",
        )
    if request.method == "POST":
        try:
            validate_csrf(request.form.get("csrf_token"))
        except ValidationError:
            return _problem_page(
                400,
                "This form has expired",
                "Go back to the app you came from and start again.",
            )
        step = request.form.get("step")
        if step == "signin":
            return _sign_in(grant)
        if step == "signout":
            session.pop(SESSION_MEMBER, None)
            return redirect(request.full_path, code=303)
        if step == "consent" and member is not None:
            allowed = request.form.get("decision") == "allow"
            # Deny: Authlib redirects with error=access_denied.
            response = server.create_authorization_response(
                grant=grant, grant_user=member if allowed else None
            )
            db.session.commit()
            return response
    if member is None:
        return _sign_in_page(grant)
    return _page(
        "oauth/consent.html",
        **_about(grant),
        email=member.email,
        scopes=[SCOPE_WORDS.get(s, s) for s in sorted(grant.request.scope.split())],
        destination=urlsplit(grant.redirect_uri).netloc,
    )


def _about(grant: Any) -> dict[str, Any]:
    client: oauth.Client = grant.client
    return {
        "action": request.full_path,
        "csrf_token": generate_csrf(),
        "app_name": client.name,
        "merchant_name": lookups.merchant_name(db.session(), client.merchant_id),
    }


def _sign_in_page(grant: Any, status: int = 200, **context: Any) -> Response:
    return _page("oauth/signin.html", status, **_about(grant), **context)


def _sign_in(grant: Any) -> BaseResponse:
    allowed, retry_after = _sign_in_allowed()
    if not allowed:
        response = _problem_page(429, "Too many sign-in attempts", "Wait a minute, then try again.")
        response.headers["Retry-After"] = str(retry_after)
        return response
    email = request.form.get("email", "")[:320]
    member = lookups.authenticate_member(db.session(), email, request.form.get("password", ""))
    if member is None:
        return _sign_in_page(grant, 200, email=email, error="The email or password is wrong.")
    session.clear()  # a fresh session (and CSRF token) for the signed-in member
    session[SESSION_MEMBER] = member.public_id
    return redirect(request.full_path, code=303)
