"""The portal's way in: the application wizard (business, contact, password and terms), the
"awaiting approval" page, signing in and out, the standing of a merchant that is not active, and
the password reset by a signed link."""

from __future__ import annotations

from typing import Any

from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from limits import parse
from werkzeug.security import generate_password_hash
from werkzeug.wrappers import Response

from coalition import clock
from coalition.extensions import db
from coalition.web import pages
from merchants import passwords, services
from merchants.forms import (
    BusinessForm,
    ContactForm,
    PasswordStepForm,
    ResetForm,
    ResetRequestForm,
    SignInForm,
)
from merchants.portal.face import FACE, MERCHANT_KEY, bp, session_merchant

APPLICATION_KEY = "portal_application"
NEXT_KEY = "portal_next"


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/portal") and not target.startswith("//"):
        return target
    return url_for("portal.home")


# The application wizard --------------------------------------------------------------------


def _application() -> dict[str, Any]:
    found = session.get(APPLICATION_KEY)
    return dict(found) if isinstance(found, dict) else {}


@bp.route("/apply", methods=["GET", "POST"])
def apply() -> Any:
    form = BusinessForm(data=_application() if request.method == "GET" else None)
    if not form.validate_on_submit():
        return render_template("portal/apply_business.html", form=form, step=1)
    session[APPLICATION_KEY] = {
        **_application(),
        "name": (form.name.data or "").strip(),
        "country": (form.country.data or "").upper(),
        "category": (form.category.data or "").strip(),
        "website": (form.website.data or "").strip() or None,
    }
    return redirect(url_for("portal.apply_contact"), code=303)


@bp.route("/apply/contact", methods=["GET", "POST"])
def apply_contact() -> Any:
    if "name" not in _application():
        return redirect(url_for("portal.apply"))
    form = ContactForm(data=_application() if request.method == "GET" else None)
    if not form.validate_on_submit():
        return render_template("portal/apply_contact.html", form=form, step=2)
    session[APPLICATION_KEY] = {
        **_application(),
        "contact_name": (form.contact_name.data or "").strip(),
        "email": (form.email.data or "").strip().lower(),
    }
    return redirect(url_for("portal.apply_finish"), code=303)


@bp.route("/apply/finish", methods=["GET", "POST"])
def apply_finish() -> Any:
    application = _application()
    if "email" not in application:
        return redirect(url_for("portal.apply_contact"))
    form = PasswordStepForm()
    if not form.validate_on_submit():
        return render_template(
            "portal/apply_finish.html", form=form, step=3, application=application
        )
    session_ = db.session()
    try:
        standing = services.apply(
            session_,
            name=application["name"],
            email=application["email"],
            country=application["country"],
            category=application["category"],
            website=application.get("website"),
            contact_name=application["contact_name"],
            password_hash=generate_password_hash(form.password.data or ""),
            now=clock.utcnow(),
        )
    except services.EmailTaken:
        session_.rollback()
        flash(_("A business has already applied with this email. Sign in instead."), "error")
        return redirect(url_for("portal.apply_contact"), code=303)
    session_.commit()
    pages.renew_session(**{MERCHANT_KEY: standing.id})
    return redirect(url_for("portal.standing"), code=303)


@bp.get("/standing")
def standing() -> Any:
    """Where a merchant that is not active stands: awaiting approval, refused, suspended."""
    merchant = session_merchant()
    if merchant is None:
        return redirect(url_for("portal.sign_in"))
    if merchant.status == "active":
        return redirect(url_for("portal.home"))
    return render_template("portal/standing.html", merchant=merchant)


# Signing in and out ------------------------------------------------------------------------


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in() -> Any:
    form = SignInForm()
    if request.method == "GET":
        target = _safe_next(request.args.get("next"))
        if session_merchant() is not None:
            return redirect(target)
        session[NEXT_KEY] = target
    if not form.validate_on_submit():
        return render_template("portal/sign_in.html", form=form)
    email = form.email.data or ""
    password = form.password.data or ""
    merchant = pages.check_password(
        FACE, email, lambda: passwords.authenticate(db.session(), email, password)
    )
    if merchant is None:
        return render_template("portal/sign_in.html", form=form), 200
    pages.signin_succeeded(FACE, email)
    target = _safe_next(session.get(NEXT_KEY))
    pages.renew_session(**{MERCHANT_KEY: merchant.public_id})
    if merchant.status != "active":
        return redirect(url_for("portal.standing"), code=303)
    return redirect(target, code=303)


@bp.post("/sign-out")
def sign_out() -> Response:
    pages.end_session()
    flash(_("You are signed out."), "info")
    return redirect(url_for("portal.sign_in"), code=303)


# Password reset ----------------------------------------------------------------------------


def _reset_allowed() -> None:
    """Asking for reset links is limited per address as sign-ups are (RATE_LIMIT_SIGNUP); an
    account locked by wrong passwords may still ask for one."""
    if not current_app.config["RATELIMIT_ENABLED"]:
        return
    limiter = current_app.extensions["coalition.limiter"]
    if not limiter.hit(
        parse(current_app.config["RATE_LIMIT_SIGNUP"]), "reset", FACE, request.remote_addr or "-"
    ):
        raise pages.TooManySignins("too many password reset requests from this address")


@bp.route("/password-reset", methods=["GET", "POST"])
def password_reset() -> Any:
    form = ResetRequestForm()
    if not form.validate_on_submit():
        return render_template("portal/reset_request.html", form=form)
    _reset_allowed()
    session_ = db.session()
    passwords.request_reset(
        session_,
        form.email.data or "",
        clock.utcnow(),
        lambda token: url_for("portal.password_reset_link", token=token, _external=True),
    )
    session_.commit()
    flash(
        _(
            "If a business applied with this email, a link to choose a new password is on its"
            " way. It works for an hour."
        ),
        "info",
    )
    return redirect(url_for("portal.sign_in"), code=303)


@bp.route("/password-reset/<token>", methods=["GET", "POST"])
def password_reset_link(token: str) -> Any:
    session_ = db.session()
    try:
        passwords.check_reset(session_, token)
    except passwords.InvalidResetLink:
        flash(_("This link has expired or was used already. Ask for a new one."), "error")
        return redirect(url_for("portal.password_reset"), code=303)
    form = ResetForm()
    if not form.validate_on_submit():
        return render_template("portal/reset.html", form=form, token=token)
    passwords.reset_password(session_, token, form.password.data or "")
    session_.commit()
    pages.end_session()
    flash(_("Your password is changed. Sign in with it."), "success")
    current_app.logger.info("a merchant reset its portal password")
    return redirect(url_for("portal.sign_in"), code=303)
