"""The operator's console, `/ops` (SPEC 3.9): staff sign in with their email and password, then a
TOTP code when they have a second factor; in production `admin` and `finance` without one are
sent to set one up before any other page. `staff_required(*roles)` guards every console page
(this package's and the `merchants` and `settlement` packages' own), and the audit log is read
here.

A signed-in request acts as the OPERATOR tenant. Support staff see no money pages: those are
`staff_required("admin", "finance")`, and the navigation shows only what the role may open."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import segno
from babel import numbers as babel_numbers
from flask import (
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import get_locale
from flask_babel import gettext as _
from werkzeug.wrappers import Response
from wtforms.fields.choices import SelectChoice

from coalition import audit, clock, tenancy
from coalition.extensions import db
from coalition.members import tiers
from coalition.staff import services
from coalition.staff.forms import AuditFilterForm, CodeForm, SignInForm
from coalition.staff.services import StaffMember
from coalition.web import pages

F = TypeVar("F", bound=Callable[..., Any])

bp = pages.face_blueprint("ops", __name__, "/ops")

FACE = "ops"
STAFF_KEY = "ops_staff"  # the signed-in staff's id
PENDING_KEY = "ops_pending"  # a staff whose password was right, awaiting the TOTP code
NEXT_KEY = "ops_next"  # where to go once signed in
NEW_SECRET_KEY = "ops_new_totp"  # the secret offered at set-up, until confirmed
ALL_ROLES = services.ROLES


@bp.before_app_request
def _forget_the_last_request() -> None:
    """Nothing of another request's staff is taken for this one's, even where requests share
    an app context (a test's); the frame forgets the CSRF token likewise."""
    if request.path.startswith("/ops"):
        g.pop("ops_staff", None)


def current_staff() -> StaffMember | None:
    """The staff signed in to this request (inside a `staff_required` page), or None."""
    return g.get("ops_staff")


def _environment() -> str:
    return str(current_app.config["COALITION_ENV"])


def _session_staff() -> StaffMember | None:
    """The staff this session is signed in as, acting as the operator; None when signed out or
    when the account is gone or disabled since."""
    staff_id = session.get(STAFF_KEY)
    if not isinstance(staff_id, int):
        return None
    tenancy.enter(db.session(), tenancy.OPERATOR)
    found = services.find_staff(db.session(), staff_id)
    if found is None or found.disabled:
        pages.end_session()
        return None
    return found


def _to_sign_in() -> Response:
    return redirect(url_for("ops.sign_in", next=request.full_path.rstrip("?")))


def _guard(roles: tuple[str, ...], *, setting_up: bool = False) -> Callable[[F], F]:
    allowed = roles or ALL_ROLES

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            staff = _session_staff()
            if staff is None:
                return _to_sign_in()
            g.ops_staff = staff
            if not setting_up and services.needs_totp_setup(staff, _environment()):
                return redirect(url_for("ops.second_factor"))
            if staff.role not in allowed:
                abort(403)
            return view(*args, **kwargs)

        guarded.staff_roles = allowed  # type: ignore[attr-defined]
        return guarded  # type: ignore[return-value]

    return decorate


def staff_required(*roles: str) -> Callable[[F], F]:
    """A console page for staff of `roles` (none given: any staff). A signed-out visitor goes to
    the sign-in page (and comes back after it); a staff of another role gets a 403 page. The
    request then acts as the OPERATOR tenant and `current_staff()` is the staff."""
    unknown = set(roles) - set(ALL_ROLES)
    if unknown:
        raise ValueError(f"unknown staff roles {unknown}")
    return _guard(tuple(roles))


def may_open(endpoint: str) -> bool:
    """Whether the signed-in staff may open `endpoint` (False for one that does not exist, so
    the navigation can name pages of packages still to come)."""
    staff = current_staff()
    view = current_app.view_functions.get(endpoint)
    if staff is None or view is None:
        return False
    return staff.role in getattr(view, "staff_roles", ())


@bp.app_context_processor
def _console_helpers() -> dict[str, Any]:
    return {"ops_staff": current_staff(), "ops_may_open": may_open}


def _safe_next(target: str | None) -> str:
    """A path inside the console, or its home: never another site."""
    if target and target.startswith("/ops") and not target.startswith("//"):
        return target
    return url_for("ops.home")


# Signing in ------------------------------------------------------------------------------------


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in() -> Any:
    form = SignInForm()
    if request.method == "GET":
        form.next.data = request.args.get("next", "")
    if not form.validate_on_submit():
        return render_template("ops/sign_in.html", form=form)
    email = form.email.data or ""
    tenancy.enter(db.session(), tenancy.SYSTEM)  # who is signing in is not known yet
    password = form.password.data or ""
    staff = pages.check_password(
        FACE, email, lambda: services.check_password(db.session(), email, password)
    )
    if staff is None:
        return render_template("ops/sign_in.html", form=form), 200
    target = _safe_next(form.next.data)
    if staff.has_totp:
        pages.renew_session(**{PENDING_KEY: staff.id, NEXT_KEY: target})
        return redirect(url_for("ops.sign_in_code"), code=303)
    return _signed_in(staff, email, target)


def _signed_in(staff: StaffMember, email: str, target: str) -> Response:
    pages.signin_succeeded(FACE, email)
    session_ = db.session()
    services.record_sign_in(session_, staff, clock.utcnow())
    session_.commit()
    pages.renew_session(**{STAFF_KEY: staff.id})
    return redirect(target, code=303)


@bp.route("/sign-in/code", methods=["GET", "POST"])
def sign_in_code() -> Any:
    pending = session.get(PENDING_KEY)
    if not isinstance(pending, int):
        return redirect(url_for("ops.sign_in"))
    tenancy.enter(db.session(), tenancy.SYSTEM)
    session_ = db.session()
    staff = services.find_staff(session_, pending)
    if staff is None or staff.disabled:
        pages.end_session()
        return redirect(url_for("ops.sign_in"))
    form = CodeForm()
    if not form.validate_on_submit():
        return render_template("ops/code.html", form=form)
    pages.signin_throttle(FACE, staff.email)
    if not services.verify_totp(session_, staff.id, form.code.data or "", clock.utcnow()):
        session_.rollback()
        pages.signin_failed(FACE, staff.email)
        flash(_("The code is not right, or was used already. Wait for the next one."), "error")
        return render_template("ops/code.html", form=form), 200
    return _signed_in(staff, staff.email, _safe_next(session.get(NEXT_KEY)))


@bp.post("/sign-out")
def sign_out() -> Response:
    pages.end_session()
    flash(_("You are signed out."), "info")
    return redirect(url_for("ops.sign_in"), code=303)


@bp.route("/second-factor", methods=["GET", "POST"])
@_guard((), setting_up=True)
def second_factor() -> Any:
    """Set up TOTP: scan the QR code (or type the key) into an authenticator app, then confirm
    a code from it."""
    staff = current_staff()
    assert staff is not None
    secret = session.get(NEW_SECRET_KEY)
    if not isinstance(secret, str):
        secret = services.new_totp_secret()
        session[NEW_SECRET_KEY] = secret
    form = CodeForm()
    if form.validate_on_submit():
        session_ = db.session()
        try:
            services.confirm_totp(session_, staff, secret, form.code.data or "", clock.utcnow())
        except services.InvalidTotpCode:
            session_.rollback()
            flash(_("The code does not match. Check the app's clock, then try again."), "error")
        else:
            session_.commit()
            session.pop(NEW_SECRET_KEY, None)
            flash(_("Your second factor is set up. Sign-ins will ask for a code."), "success")
            return redirect(url_for("ops.home"), code=303)
    uri = services.provisioning_uri(secret, staff.email)
    qr = segno.make(uri, error="m").svg_inline(
        scale=4, omitsize=True, title=_("QR code to scan with an authenticator app")
    )
    return render_template(
        "ops/second_factor.html",
        form=form,
        qr=qr,
        secret=secret,
        required=services.needs_totp_setup(staff, _environment()),
    )


# Pages -----------------------------------------------------------------------------------------


@bp.get("/")
@staff_required()
def home() -> str:
    """The console's home: what each role may open, and how many members hold each tier."""
    counts = tiers.tier_counts(db.session())
    total = sum(n for _, n in counts)

    def number(n: int) -> str:
        return babel_numbers.format_decimal(n, locale=get_locale())

    rows = [
        {"tier": name, "members": number(n), "share": n * 100 // total if total else None}
        for name, n in counts
    ]
    return render_template("ops/home.html", tier_rows=rows, members=number(total))


@bp.get("/audit")
@staff_required("admin", "finance")
def audit_log() -> str:
    """Every staff action and operator API change, newest first, filtered and paginated."""
    session_ = db.session()
    form = AuditFilterForm(request.args)
    form.action.choices = [SelectChoice("", _("Any action"))] + [
        SelectChoice(a, a) for a in audit.actions(session_)
    ]
    filters: dict[str, Any] = {}
    if form.validate():
        filters = {
            "actor": (form.actor.data or "").strip() or None,
            "action": form.action.data or None,
            "target": (form.target.data or "").strip() or None,
            "since": form.since.data,
            "until": form.until.data,
        }
    number = pages.page_number()
    found = audit.events(session_, **filters, page=number, page_size=pages.PAGE_SIZE)
    return render_template(
        "ops/audit.html", form=form, found=found, number=number, filtered=any(filters.values())
    )
