"""Spending a member's points at a merchant's till (SPEC 3.3): redemptions and their reversals,
and holds placed, captured and voided. Each function takes a session and validated values and
returns a result (`RedemptionResult`, `ReversalResult`, `HoldResult`); refusals raise. The HTTP
layer (`merchants.api.points`) serialises the results with their schemas.

Spending needs proof that the member is there (SPEC 2): its current code, checked by a
`CodeCheck` whose wrong guesses are counted even though the refused spending leaves nothing
behind; or, for a redemption, a member-delegated token. A merchant reaches only its own
redemptions and holds: another merchant's are `not_found`, like ones that do not exist."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from coalition import economics
from coalition.fraud import velocity as fraud
from coalition.ledger import holds, operations, reads, shapes
from coalition.ledger.accounts import lock_member
from coalition.ledger.reads import balances_after
from coalition.ledger.rows import Actor
from coalition.members import codes
from coalition.members.services import FoundMember, find_member, member_by_id, member_of_account
from merchants import purchases
from merchants.purchases import MemberState, Money, member_state


@dataclass(frozen=True)
class Redemption:
    """A redemption's transaction: its points and what they are worth (SPEC 2)."""

    id: str
    points: int
    value: Money
    type: ClassVar[str] = "redeem"


@dataclass(frozen=True)
class Capture(Redemption):
    """A hold captured: a redemption of the hold's points, or of some of them."""

    hold: str


@dataclass(frozen=True)
class RedemptionResult:
    """A redemption recorded (a capture among them), or `replayed`: recorded before under its
    external_id."""

    transaction: Redemption
    member: MemberState
    replayed: bool = False


@dataclass(frozen=True)
class Reversal:
    id: str
    redemption: str
    points: int
    type: ClassVar[str] = "reversal"


@dataclass(frozen=True)
class ReversalResult:
    transaction: Reversal
    member: MemberState


@dataclass(frozen=True)
class HoldResult:
    """A hold as the ledger shows it (`id`, `points`, `status`, and while active `expires_at`),
    and its member."""

    hold: Mapping[str, Any]
    member: MemberState


class CodeCheck:
    """The checks of a spending whose refusal must leave a trace although the refused
    operation leaves nothing: a member's wrong code is counted, a spending over a velocity
    limit is a fraud event (`coalition.fraud`), and so is a wrong code, at the merchant whose
    till typed it (the fraud report's bursts of wrong codes). All are written afterwards in the
    same commit (`idempotent`'s `on_refusal`)."""

    def __init__(self, session: Session, now: datetime) -> None:
        self.session, self.now = session, now
        self.wrong_for: int | None = None
        self.wrong_at: int | None = None
        self.refused: fraud.Refused | None = None

    def consume(self, member_id: int, code: str, merchant_id: int) -> None:
        try:
            codes.consume(self.session, member_id, code, self.now)
        except codes.InvalidCode:
            self.wrong_for, self.wrong_at = member_id, merchant_id
            raise

    def velocity(
        self, member: FoundMember, merchant_id: int, points: int, account_id: int | None = None
    ) -> None:
        """Refuse a spending over a velocity limit (the caller holds the member's lock)."""
        try:
            fraud.check_spend(
                self.session,
                economics.terms_at(self.now, merchant_id, session=self.session),
                member_id=member.id,
                member_account_id=account_id or member.account_id,
                merchant_id=merchant_id,
                points=points,
                now=self.now,
            )
        except fraud.VelocityLimitExceeded as refusal:
            self.refused = refusal.refused  # type: ignore[attr-defined]
            raise

    def on_refusal(self, problem: dict[str, Any]) -> None:
        if self.wrong_for is not None and problem.get("code") == codes.InvalidCode.code:
            locked = codes.record_failure(self.session, self.wrong_for, self.now)
            fraud.record_wrong_code(
                self.session, self.wrong_for, self.wrong_at, locked=locked, now=self.now
            )
        if self.refused is not None and problem.get("code") == fraud.VelocityLimitExceeded.code:
            fraud.record(self.session, self.refused, self.now)


def _money(session: Session, points: int, at: datetime) -> Money:
    """What `points` spent at `at` are worth: SPEC 2's `point_value`, coalition-wide, in the
    terms of that business day."""
    value = shapes.redemption_value(session, points, at)
    return Money(value["amount"], value["currency"])


def _owner_of_hold(session: Session, hold_id: str, merchant_id: int) -> FoundMember:
    return member_of_account(session, holds.hold_account(session, hold_id, merchant_id))


def record_redemption(
    session: Session,
    *,
    merchant_id: int,
    redemption: Mapping[str, Any],
    actor: Actor,
    check: CodeCheck,
    now: datetime,
    member_id: int | None = None,
) -> RedemptionResult:
    """A redemption (validated by `RedemptionSchema`), or the one recorded earlier under its
    external_id, replayed. With `member_id`, a member-delegated
    token's member, the token is the proof: that member redeems, as itself, with no code.
    Otherwise `redemption` names the member and gives its code, and `actor` (the till) redeems.
    Refusals raise: `not_found`, `idempotency_conflict`, `invalid_code`, `redemption_locked`,
    `velocity_limit_exceeded`, `insufficient_points`."""
    if member_id is not None:
        member = member_by_id(session, member_id)
        actor = Actor("member", member.public_id)
    else:
        member = find_member(session, redemption["member"])
    # The account first, then the code: every path here locks in that order.
    account = lock_member(session, member.id)
    external_id, points = redemption["external_id"], redemption["points"]
    first = purchases.earlier_transactions(session, merchant_id, "redeem", [external_id]).get(
        external_id
    )
    if first is not None:
        if first.member_account_id != member.account_id or first.points != points:
            raise purchases.external_id_conflict(external_id, first.public_id, "redemption")
        balance = balances_after(session, [first.id])[first.id]
        value = _money(session, first.points, first.created_at)
        replay = Redemption(first.public_id, first.points, value)
        return RedemptionResult(replay, member_state(member, balance), replayed=True)
    if member_id is None:
        check.consume(member.id, redemption["code"], merchant_id)
    check.velocity(member, merchant_id, points)
    value = _money(session, points, now)
    try:
        result = operations.redeem(
            session,
            member_id=member.id,
            merchant_id=merchant_id,
            points=points,
            actor=actor,
            now=now,
            external_id=external_id,
            locked=account,
            member_public_id=member.public_id,
            value=asdict(value),
        )
    except IntegrityError as error:
        # Another member's redemption (under its own lock, unseen by the check above) took
        # this external_id meanwhile: a different redemption.
        if not purchases.external_id_clash(error):
            raise
        raise purchases.external_id_conflict(
            external_id, "another request", "redemption"
        ) from error
    done = Redemption(result["transaction"]["id"], points, value)
    return RedemptionResult(done, member_state(member, result["member"]["balance"]))


def reverse_redemption(
    session: Session,
    *,
    merchant_id: int,
    redemption_id: str,
    actor: Actor,
    now: datetime,
) -> ReversalResult:
    """Undo the merchant's redemption `redemption_id`. Refusals raise:
    `not_found`, `already_reversed`."""
    redemption = reads.merchant_transaction(session, redemption_id, merchant_id, "redeem")
    member = member_of_account(session, redemption.member_account_id)
    result = operations.reverse_redemption(
        session,
        redemption_id=redemption_id,
        merchant_id=merchant_id,
        actor=actor,
        now=now,
        member_public_id=member.public_id,
    )
    done, state = result["transaction"], result["member"]
    return ReversalResult(
        Reversal(done["id"], redemption_id, done["points"]),
        member_state(member, state["balance"], state["available"]),
    )


def place_hold(
    session: Session,
    *,
    merchant_id: int,
    hold: Mapping[str, Any],
    check: CodeCheck,
    now: datetime,
) -> HoldResult:
    """Reserve points (`hold` validated by `HoldRequestSchema`; the member's code is the proof)
    for `ttl_seconds`, 15 minutes by default. Refusals raise: `not_found`,
    `invalid_code`, `redemption_locked`, `velocity_limit_exceeded`, `insufficient_points`."""
    ttl = timedelta(seconds=hold.get("ttl_seconds", holds.HOLD_DEFAULT_TTL.total_seconds()))
    member = find_member(session, hold["member"])
    account = lock_member(session, member.id)
    check.consume(member.id, hold["code"], merchant_id)
    check.velocity(member, merchant_id, hold["points"])
    result = holds.place_hold(
        session,
        member_id=member.id,
        merchant_id=merchant_id,
        points=hold["points"],
        now=now,
        ttl=ttl,
        locked=account,
    )
    state = result["member"]
    return HoldResult(result["hold"], member_state(member, state["balance"], state["available"]))


def capture_hold(
    session: Session,
    *,
    merchant_id: int,
    hold_id: str,
    points: int | None,
    actor: Actor,
    now: datetime,
    check: CodeCheck | None = None,
) -> RedemptionResult:
    """Spend all of the merchant's hold `hold_id`, or `points` of it (the rest is released): a
    redemption. Refusals raise: `not_found`, `hold_not_active`, `velocity_limit_exceeded`."""
    member = _owner_of_hold(session, hold_id, merchant_id)
    lock_member(session, member.id)
    held = holds.active_hold_points(session, hold_id, merchant_id, now)
    value = None
    if held is not None:
        (check or CodeCheck(session, now)).velocity(
            member, merchant_id, held if points is None else min(points, held)
        )
        value = _money(session, held if points is None else points, now)
    result = holds.capture_hold(
        session,
        hold_id=hold_id,
        merchant_id=merchant_id,
        actor=actor,
        now=now,
        points=points,
        member_public_id=member.public_id,
        value=asdict(value) if value is not None else None,
    )
    done, state = result["transaction"], result["member"]
    return RedemptionResult(
        Capture(done["id"], done["points"], value or _money(session, done["points"], now), hold_id),
        member_state(member, state["balance"], state["available"]),
    )


def void_hold(session: Session, *, merchant_id: int, hold_id: str, now: datetime) -> HoldResult:
    """Release the merchant's hold `hold_id` without spending. Refusals raise:
    `not_found`, `hold_not_active`."""
    member = _owner_of_hold(session, hold_id, merchant_id)
    result = holds.void_hold(
        session,
        hold_id=hold_id,
        merchant_id=merchant_id,
        now=now,
        member_public_id=member.public_id,
    )
    state = result["member"]
    return HoldResult(result["hold"], member_state(member, state["balance"], state["available"]))
