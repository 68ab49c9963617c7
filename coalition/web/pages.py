"""The frame the three faces are built on (SPEC 3.9: `/portal`, `/me`, `/ops`), and the landing
page `/` that leads to them.

A face is a blueprint made by `face_blueprint`: its forms need Flask-WTF's CSRF token, its answers
carry a strict Content-Security-Policy (no inline script or style) and the other hardening headers,
and its errors are HTML pages rather than the API's problem documents. Each face checks its own
session (a merchant, a member, a staff account); the API's token policies do not apply to pages.
Sign-in forms share one throttle: a cap per client address and a lockout per account."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

from flask import (
    Blueprint,
    Flask,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
)
from flask_babel import Babel, get_locale, refresh
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError, CSRFProtect
from limits import parse
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from coalition.errors import CoalitionError
from coalition.web import problems

LANGUAGES = {"en": "English", "ru": "Русский"}
LANGUAGE_COOKIE = "lang"
PAGE_SIZE = 25
MAX_PAGE = 10_000  # a bound on OFFSET, so a crafted page number cannot make a long scan
# Five wrong passwords for one account lock it for a quarter of an hour, from any address.
LOCKOUT = "5/15minutes"
SESSION_ID = "sid"
T = TypeVar("T")

# 'self' only: the stylesheet and any script are files the app serves. Inline SVG charts draw
# with presentation attributes, which CSP does not count as styles.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}

csrf = CSRFProtect()
bp = Blueprint(
    "pages",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/assets",
)


class TooManySignins(CoalitionError):
    status, code, title = 429, "too_many_signins", "Too many sign-in attempts"


def face_blueprint(name: str, import_name: str, url_prefix: str, **options: Any) -> Blueprint:
    """A face's blueprint: CSRF on every form, the strict headers, HTML error pages."""
    face = Blueprint(
        name,
        import_name,
        url_prefix=url_prefix,
        template_folder=options.pop("template_folder", "templates"),
        **options,
    )
    face.before_request(_protect)
    face.after_request(harden)
    face.register_error_handler(CoalitionError, _domain_error_page)
    face.record_once(lambda state: state.app.extensions["coalition.faces"].add(name))
    return face


def _protect() -> None:
    _begin_page()
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        csrf.protect()  # raises CSRFError, a 400, rendered by `error_answer`


def _begin_page() -> None:
    g.page = True
    # Flask-Babel keeps the locale, and Flask-WTF the CSRF token, on the app context, which a
    # test shares across requests: each page starts with neither.
    refresh()
    g.pop("csrf_token", None)


def harden(response: Response) -> Response:
    for header, value in PAGE_HEADERS.items():
        response.headers.setdefault(header, value)
    return response


def is_page() -> bool:
    """Is this request a page's (a face, the landing page), not the API's or OAuth's?"""
    return bool(g.get("page")) or request.blueprint in current_app.extensions["coalition.faces"]


def error_page(status: int, title: str, message: str) -> Response:
    body = render_template("error.html", status=status, title=title, message=message)
    return harden(current_app.make_response((body, status)))


def _messages(status: int) -> tuple[str, str]:
    known = {
        400: (_("This form has expired"), _("Go back, reload the page and try again.")),
        403: (_("Not allowed"), _("Your account may not open this page.")),
        404: (
            _("Page not found"),
            _("There is nothing at this address. Check it, or start again from the home page."),
        ),
        405: (_("Not allowed"), _("This page cannot be used that way.")),
        429: (_("Too many attempts"), _("Wait a few minutes, then try again.")),
    }
    return known.get(
        status,
        (_("Something went wrong"), _("We could not show this page. Try again in a moment.")),
    )


def error_answer(error: HTTPException) -> Response:
    """An HTTP error as its path expects it: a problem document under the API, a page under
    the faces, werkzeug's own answer elsewhere."""
    if problems.wants_problem():
        return problems.from_http_exception(error)
    if not _is_page_path():
        return error.get_response()
    status = error.code or 500
    title, message = _messages(status)
    if isinstance(error, CSRFError):
        title, message = _messages(400)
    return error_page(status, title, message)


def _domain_error_page(error: CoalitionError) -> Response:
    title, message = _messages(error.status)
    response = error_page(error.status, title, message)
    if error.status == 429:
        response.headers["Retry-After"] = "60"
    return response


def _is_page_path() -> bool:
    if is_page():
        return True
    prefixes = current_app.extensions["coalition.face_prefixes"]
    return request.path == "/" or request.path.startswith(prefixes)


# Sessions ----------------------------------------------------------------------------------------


def renew_session(**values: Any) -> None:
    """At sign-in: nothing of the visitor's session survives (a new id, a new CSRF token)."""
    session.clear()
    session[SESSION_ID] = secrets.token_urlsafe(16)
    session.update(values)
    session.permanent = False


def end_session() -> None:
    session.clear()


# Sign-in throttle --------------------------------------------------------------------------------


def _limiter() -> Any:
    return current_app.extensions["coalition.limiter"]


def signin_throttle(face: str, email: str) -> None:
    """Before a password is checked: refused when this address signs in too often, or when
    this account is locked out by its failures."""
    if not current_app.config["RATELIMIT_ENABLED"]:
        return
    rate = parse(current_app.config["RATE_LIMIT_SIGNIN"])
    if not _limiter().hit(rate, "signin", face, request.remote_addr or "-"):
        raise TooManySignins("too many sign-in attempts from this address")
    if not _limiter().test(parse(LOCKOUT), "lockout", face, email.strip().lower()):
        raise TooManySignins("this account is locked for a while after wrong passwords")


def check_password(face: str, email: str, check: Callable[[], T | None]) -> T | None:
    """A sign-in form's password check, between the throttle and the count of failures: what
    `check` found, or None with the form's error flashed."""
    signin_throttle(face, email)
    found = check()
    if found is None:
        signin_failed(face, email)
        flash(_("The email or password is not right."), "error")
    return found


def signin_failed(face: str, email: str) -> None:
    if current_app.config["RATELIMIT_ENABLED"]:
        _limiter().hit(parse(LOCKOUT), "lockout", face, email.strip().lower())


def signin_succeeded(face: str, email: str) -> None:
    if current_app.config["RATELIMIT_ENABLED"]:
        _limiter().clear(parse(LOCKOUT), "lockout", face, email.strip().lower())


# Lists -------------------------------------------------------------------------------------------


def page_number() -> int:
    """`?page=` as a 1-based number; anything else is the first page."""
    raw = request.args.get("page", "1")
    number = int(raw) if raw.isdigit() else 1
    return min(max(number, 1), MAX_PAGE)


def page_url(number: int) -> str:
    """This page's URL with `?page=` set, keeping its other arguments (a list's filter)."""
    args = request.args.to_dict()
    args["page"] = str(number)
    return f"{request.path}?{urlencode(args)}"


# Language ----------------------------------------------------------------------------------------


def _locale() -> str:
    chosen = request.cookies.get(LANGUAGE_COOKIE)
    if chosen in LANGUAGES:
        return chosen
    return request.accept_languages.best_match(list(LANGUAGES)) or "en"


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never an open redirect."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


@bp.get("/")
def landing() -> str:
    _begin_page()
    return render_template("landing.html")


@bp.get("/language/<code>")
def language(code: str) -> Response:
    _begin_page()
    response = redirect(_safe_next(request.args.get("next")), code=303)
    if code in LANGUAGES:
        response.set_cookie(
            LANGUAGE_COOKIE, code, max_age=365 * 86400, httponly=True, samesite="Lax"
        )
    return response


@bp.after_request
def _harden_landing(response: Response) -> Response:
    return harden(response)


def _template_helpers() -> dict[str, Callable[..., Any] | Any]:
    return {
        "languages": LANGUAGES,
        "current_language": str(get_locale() or "en"),
        "has_endpoint": lambda name: name in current_app.view_functions,
        "page_url": page_url,
    }


def init_app(app: Flask, prefixes: tuple[str, ...] = ("/portal", "/me", "/ops")) -> None:
    app.extensions["coalition.faces"] = {"pages"}
    app.extensions["coalition.face_prefixes"] = (*prefixes, "/language/")
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)  # the faces check; the JSON API may not
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # the session's life bounds the token's
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["SESSION_COOKIE_SECURE"] = app.config["COALITION_ENV"] == "production"
    csrf.init_app(app)
    Babel(app, locale_selector=_locale)
    app.context_processor(_template_helpers)
    app.register_error_handler(HTTPException, error_answer)
    app.register_blueprint(bp)


def declare_public(app: Flask) -> None:
    """After every face is registered: pages check their own sessions, not API tokens."""
    from coalition.web import access

    faces = app.extensions["coalition.faces"]
    for endpoint in list(app.view_functions):
        if endpoint.split(".", 1)[0] in faces:
            access.mark_public(app, endpoint)
