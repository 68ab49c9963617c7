"""Member routes (SPEC 3.3, 3.4): online sign-up, enrolment at a till, look-up by card or id,
and the member API behind a member-delegated token (`/me`...). Thin: validate, call a service
or a read, serialise. The operations live in `services`, the views of a member in `reads`."""

from __future__ import annotations

from typing import Any

from flask import current_app

from coalition import clock
from coalition.extensions import db
from coalition.members import credentials, premium, reads, schemas, services
from coalition.web.access import principal, public, require
from coalition.web.api import PageArgs, blueprint, page_schema, paginate

bp = blueprint("members", __name__, "Members: sign-up, enrolment, look-up, and the member API")

MEMBER = ("member",)
# A code is a secret of the moment: no cache, no proxy, may keep it.
NO_STORE = {"Cache-Control": "no-store"}


def _member(new: services.NewMember) -> dict[str, Any]:
    return {
        "id": new.public_id,
        "card_number": new.card_number,
        "email": new.email,
        "phone": new.phone,
        "name": new.name,
        "tier": new.tier,
        "created_at": new.created_at,
    }


@bp.route("/member-signups", methods=["POST"])
@public("RATE_LIMIT_SIGNUP")
@bp.arguments(schemas.MemberSignupIn)
@bp.response(201, schemas.MemberOut)
@bp.alt_response(409, description="The email is registered already (`email_taken`).")
def sign_up(signup: dict[str, Any]) -> Any:
    """Join the coalition online: a new member with a new card, ready to collect at every
    partner. An email already registered (in any letter case) is `409 email_taken`."""
    session = db.session()
    new = credentials.join(
        session,
        now=clock.utcnow(),
        card_prefix=current_app.config["COALITION_CARD_PREFIX"],
        email=signup["email"],
        password=signup["password"],
        name=signup.get("name"),
    )
    session.commit()
    return _member(new)


@bp.route("/members", methods=["POST"])
@require("members:write")
@bp.arguments(schemas.MemberEnrolmentIn)
@bp.response(201, schemas.MemberEnrolledOut)
@bp.alt_response(
    409, description="The card is issued (`card_taken`) or the email registered (`email_taken`)."
)
@bp.alt_response(415, description="The body is not JSON (`unsupported_media_type`).")
def enrol(enrolment: dict[str, Any]) -> Any:
    """Enrol a member at the till, with a pre-printed `card_number` or a new card. A card that
    is not one of the coalition's is `422` (`errors.card_number`), one already issued
    `409 card_taken`, an email already registered `409 email_taken`."""
    session = db.session()
    new = services.register_member(
        session,
        now=clock.utcnow(),
        card_prefix=current_app.config["COALITION_CARD_PREFIX"],
        card_number=enrolment.get("card_number"),
        email=enrolment.get("email"),
        phone=enrolment.get("phone"),
        name=enrolment.get("name"),
        enrolled_by_merchant_id=principal().merchant_id,
    )
    session.commit()
    return _member(new)


@bp.route("/members/<card_or_id>", methods=["GET"])
@require("members:read")
@bp.response(200, schemas.MemberLookupOut)
def look_up(card_or_id: str) -> Any:
    """A member by card number or `mbr_` id: masked card, tier, balance and available points,
    nothing of other shops and no contact details. Unknown or blocked: `404`."""
    return reads.card_view(db.session(), card_or_id, clock.utcnow())


@bp.route("/me", methods=["GET"])
@require("balance:read", kinds=MEMBER)
@bp.response(200, schemas.MeProfileOut)
def me() -> Any:
    """The member's profile and its progress to the next tier: `qualifying_spend` (purchases
    at every partner over the trailing 12 months, less their refunds, counted from `since`, a
    business date), the `next` tier, its `next_threshold` and the `spend_to_next` it takes;
    money in minor units. At the top tier `next`, `next_threshold` and `spend_to_next` are
    null. Upgrades come with the purchase that crosses a threshold; a downgrade only with the
    nightly recalculation, so the spend may be below the current tier's threshold for a day.
    `premium` is the paid membership in force now, or null."""
    session = db.session()
    member_id = _member_id()
    now = clock.utcnow()
    return {**reads.profile(session, member_id, now), "premium": premium.in_force(session, member_id, now)}


@bp.route("/me/balance", methods=["GET"])
@require("balance:read", kinds=MEMBER)
@bp.response(200, schemas.MeBalanceOut)
def my_balance() -> Any:
    """One balance across all shops: `points`, `available` (less active holds), `held`,
    `debt`; `expiring`: open points by the date they expire (coalition time zone), soonest
    first, at most 12 dates, `expires_at` the earliest moment on that date; `by_merchant`:
    per merchant, points `earned` (less refund clawbacks) and `redeemed` (less reversals)."""
    return reads.points(
        db.session(), _member_id(), clock.utcnow(), current_app.config["COALITION_TIMEZONE"]
    )


@bp.route("/me/transactions", methods=["GET"])
@require("balance:read", kinds=MEMBER)
@bp.arguments(PageArgs, location="query")
@bp.response(200, page_schema(schemas.MeTransactionOut, "MeTransactionPage"))
def my_transactions(args: dict[str, Any]) -> Any:
    """The member's transactions at every merchant, newest first. `points` is always
    positive; `type` says which way they went (`earn`, `redeem`, `refund` clawback,
    `reversal` of a redemption, `expiry`). An expiry has no merchant."""
    session = db.session()
    reads.ensure_active(session, _member_id())
    account_id = principal().member_account_id
    assert account_id is not None  # a member token always names the member's account
    query = reads.transactions_of(account_id)
    return paginate(query, reads.transactions.c.id, args, reads.transaction_view)


@bp.route("/me/code", methods=["GET"])
@require("redeem", kinds=MEMBER)
@bp.response(200, schemas.MeCodeOut)
def my_code() -> Any:
    """The member's current rotating redemption code (6 digits, RFC 6238) and when it stops
    working. Shown at a till, it proves the member is there; it works once."""
    return reads.current_code(db.session(), _member_id(), clock.utcnow()), NO_STORE


def _member_id() -> int:
    member_id = principal().member_id
    assert member_id is not None  # `require(kinds=MEMBER)` let only member tokens in
    return member_id
