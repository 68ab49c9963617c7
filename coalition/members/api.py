"""Member routes (SPEC 3.3, 3.4): online sign-up, enrolment at a till, look-up by card or id,
and the member API behind a member-delegated token (`/me`...). Thin: validate, call a service
or a read, serialise. The operations live in `services`, the views of a member in `reads`."""

from __future__ import annotations

from typing import Any

from flask import current_app

from coalition import clock
from coalition.extensions import db
from coalition.members import attributes, credentials, premium, reads, schemas, services
from coalition.privacy import reads as privacy_reads
from coalition.privacy import schemas as privacy_schemas
from coalition.privacy import services as privacy
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
    `premium` is the paid membership in force now, or null. `attributes`: what the member
    chose to tell about itself (null fields: not given)."""
    return _profile(db.session(), _member_id())


def _profile(session: Any, member_id: int) -> dict[str, Any]:
    now = clock.utcnow()
    return {
        **reads.profile(session, member_id, now),
        "premium": premium.in_force(session, member_id, now),
        "attributes": attributes.attributes_of(session, member_id),
    }


@bp.route("/me", methods=["PUT"])
@require("profile:write", kinds=MEMBER)
@bp.arguments(schemas.MeAttributesIn)
@bp.response(200, schemas.MeProfileOut)
@bp.alt_response(422, description="An invalid field (`validation_error`); nothing written.")
def change_me(changes: dict[str, Any]) -> Any:
    """Change what the member tells about itself: `birth_date` (not in the future),
    `household_size` (1-20), `interests` and `region` from fixed lists (see the schema). A
    field left out keeps its value; `null` clears it. Answers the profile, as `GET /me`. Used
    for offers only while the member's `profiling` consent is granted. Needs the
    `profile:write` scope, which the member grants on its own (decision 302)."""
    session = db.session()
    member_id = _member_id()
    reads.ensure_active(session, member_id)
    now = clock.utcnow()
    attributes.set_attributes(
        session,
        member_id,
        changes,
        now=now,
        today=clock.business_date(now, current_app.config["COALITION_TIMEZONE"]),
    )
    session.commit()
    return _profile(session, member_id)


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


@bp.route("/me/consents", methods=["GET"])
@require("balance:read", kinds=MEMBER)
@bp.response(200, privacy_schemas.ConsentsOut)
def my_consents() -> Any:
    """The member's consents: for each purpose (`email`, `sms`, `post` marketing, `sharing`
    its contact with partners where it shopped, and `profiling`: using its attributes and
    purchases to choose its offers) whether it is granted, the text it
    agrees to and that text's version; and every change, oldest first (`source`: `me`, the
    member site, or `api` with the partner app's `client_id`). Never recorded: not granted."""
    return privacy_reads.consents_view(db.session(), _member_id())


@bp.route("/me/consents", methods=["PUT"])
@require("consents:write", kinds=MEMBER)
@bp.arguments(privacy_schemas.ConsentsIn)
@bp.response(200, privacy_schemas.ConsentsOut)
def set_my_consents(wanted: dict[str, bool]) -> Any:
    """Grant (`true`) or withdraw (`false`) some purposes; those left out keep their state.
    Each change is appended to the history under today's text version, made through this
    app's client; asking for the state a purpose is in already records nothing (a PUT can be
    repeated). Needs the `consents:write` scope, which the member grants on its own."""
    session = db.session()
    member_id = _member_id()
    reads.ensure_active(session, member_id)
    privacy.set_consents(
        session,
        member_id,
        wanted,
        source=privacy.Source("api", principal().client_id),
        now=clock.utcnow(),
    )
    session.commit()
    return privacy_reads.consents_view(session, member_id)


@bp.route("/me/export", methods=["GET"])
@require("balance:read", kinds=MEMBER)
@bp.response(200, privacy_schemas.ExportOut)
def my_export() -> Any:
    """Everything the coalition keeps of the member, as one document: profile, card, balance,
    consents with their history, and every transaction at every merchant, oldest first (up to
    100,000, the newest; `transactions_complete` is false if there were more)."""
    return privacy_reads.export(db.session(), _member_id(), clock.utcnow()), NO_STORE


@bp.route("/me", methods=["DELETE"])
@require("account:delete", kinds=MEMBER)
@bp.response(200, privacy_schemas.ErasureOut)
def erase_me() -> Any:
    """Erase the member (SPEC 2): its name, email, phone and password are removed, its card is
    blocked, its remaining points go to breakage (an `expiry` transaction, reason `erasure`),
    its holds are voided, every token it granted any app is revoked (this one too), and each
    merchant where it shopped gets `member.erased`. The ledger stays whole. Needs the
    `account:delete` scope, which the member grants on its own."""
    session = db.session()
    now = clock.utcnow()
    done = privacy.erase(
        session, _member_id(), source=privacy.Source("api", principal().client_id), now=now
    )
    session.commit()
    return {
        "id": done.public_id,
        "erased_at": now,
        "points_written_off": done.points_written_off,
        "debt_left": done.debt_left,
        "holds_voided": done.holds_voided,
    }


def _member_id() -> int:
    member_id = principal().member_id
    assert member_id is not None  # `require(kinds=MEMBER)` let only member tokens in
    return member_id
