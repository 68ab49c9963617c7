"""Payments (SPEC 3.7): a statement's closing becomes one payment instruction, which the job
`settlement.tasks.submit_payments` carries out at Stripe (`submit_due`) through
`settlement.gateway`, and which Stripe's events (`receive_event`, from `POST /webhooks/stripe`)
bring to its end; `record_outcome` records what became of it. Also the merchant's Stripe
onboarding.

An instruction's life (QUALITY B1: one instruction and one Stripe payment per statement):

    created --(job marks it, commits, then calls Stripe)--> submitted
    submitted --Stripe made the transfer (API answer, look-up or transfer.created)--> succeeded
    submitted --the invoice is sent--> submitted (with stripe_id), waiting for its events
    submitted --invoice.paid--> succeeded
    submitted --invoice.payment_failed / marked_uncollectible / voided--> failed
    submitted --Stripe refuses the request (a card or validation error)--> failed
    succeeded --transfer.reversed (in full)--> failed          (transfers only)
    failed --invoice.paid--> succeeded                         (invoices only)

A `submitted` instruction without a `stripe_id` has an unknown outcome (a crash or time-out may
have come after Stripe committed): the next run looks it up at Stripe by the instruction id
before calling again, and the call itself carries the instruction id as its idempotency key, so
there is never a second Transfer or Invoice.

Precedence, so that events in any order end in the same state: every outcome has a rank per
kind, and an outcome only replaces one of lower rank. Transfers: submitted 0 < succeeded 1 <
failed 2 (only a reversal undoes money that moved). Invoices: submitted 0 < failed 1 <
succeeded 2 (money that arrived wins over any earlier failed attempt). An event about an
earlier state never overwrites a later one."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, and_, or_, select, update
from sqlalchemy.orm import Session

from coalition import audit, clock, faults, outbox
from coalition.database import insert_unless_present, table
from coalition.errors import NotFound
from coalition.ids import new_id
from merchants.models import Merchant
from settlement import premium
from settlement.gateway import (
    NOT_CONFIGURED,
    GatewayError,
    Invoice,
    MerchantProfile,
    PaymentGateway,
    Refused,
    Transfer,
    Unavailable,
)
from settlement.models import PaymentInstruction, Statement, StripeEvent
from settlement.money import minor_units, money

log = logging.getLogger(__name__)

instructions = table(PaymentInstruction)
statements = table(Statement)
merchants = table(Merchant)
stripe_events = table(StripeEvent)

# A bound on one run (TIGER_STYLE); the next run takes the rest.
MAX_PER_RUN = 1000
RANKS = {
    "transfer": {"created": 0, "submitted": 0, "succeeded": 1, "failed": 2},
    "invoice": {"created": 0, "submitted": 0, "failed": 1, "succeeded": 2},
}
TERMINAL = ("succeeded", "failed")
# Stripe's invoice events and the outcome each means.
INVOICE_OUTCOMES = {
    "invoice.paid": "succeeded",
    "invoice.payment_failed": "failed",
    "invoice.marked_uncollectible": "failed",
    "invoice.voided": "failed",
}
TRANSFER_EVENTS = ("transfer.created", "transfer.updated", "transfer.reversed")
INFORMATIONAL_EVENTS = ("payout.paid", "payout.failed", "account.updated")


def instruct(
    session: Session, statement: Statement | Row[Any], now: datetime | None = None
) -> PaymentInstruction | None:
    """The statement's payment instruction (the model or a row of `statements`), made once
    (idempotent on the statement): a Transfer when the operator pays (negative closing), an
    Invoice when the merchant pays (positive), none when nothing is owed. Refuses a closing
    not rounded to minor units (`InvalidClosing`)."""
    signed_minor = minor_units(statement.closing, statement.currency)
    if signed_minor == 0:
        return None
    session.execute(
        insert_unless_present(session, instructions, ["statement_id"]).values(
            public_id=new_id("pay"),
            statement_id=statement.id,
            merchant_id=statement.merchant_id,
            kind="invoice" if signed_minor > 0 else "transfer",
            amount_minor=abs(signed_minor),
            currency=statement.currency,
            status="created",
            attempts=0,
            created_at=now or clock.utcnow(),
        )
    )
    return session.scalars(
        select(PaymentInstruction).where(PaymentInstruction.statement_id == statement.id)
    ).one()


# -- the merchant's Stripe side ----------------------------------------------------------------


def _merchant(session: Session, merchant_id: int) -> Row[Any]:
    return session.execute(select(merchants).where(merchants.c.id == merchant_id)).one()


def _profile(merchant: Row[Any]) -> MerchantProfile:
    return MerchantProfile(merchant.public_id, merchant.name, merchant.email, merchant.country)


def ensure_account(session: Session, gw: PaymentGateway, merchant_id: int) -> str:
    """The merchant's connected account, made at Stripe if it has none (idempotent on the
    merchant: a retry within Stripe's 24 hours gets the same account back)."""
    return _ensure(
        session, merchant_id, merchants.c.stripe_account_id, gw.create_account, "account"
    )


def ensure_customer(session: Session, gw: PaymentGateway, merchant_id: int) -> str:
    """The merchant as a Stripe customer, to invoice; made if it has none."""
    return _ensure(
        session, merchant_id, merchants.c.stripe_customer_id, gw.create_customer, "customer"
    )


def _ensure(
    session: Session,
    merchant_id: int,
    column: Any,
    create: Callable[[MerchantProfile, str], str],
    what: str,
) -> str:
    """The merchant's Stripe object kept in `column`, made with `create` (under a key derived
    from the merchant) if there is none; a concurrent run's object, recorded first, wins."""
    merchant = _merchant(session, merchant_id)
    if merchant._mapping[column.key]:
        return str(merchant._mapping[column.key])
    session.commit()  # no transaction open across a Stripe call (decision 82)
    made = create(_profile(merchant), f"{merchant.public_id}:{what}")
    session.execute(
        update(merchants)
        .where(merchants.c.id == merchant_id, column.is_(None))
        .values({column.key: made})
    )
    return str(_merchant(session, merchant_id)._mapping[column.key])


def start_onboarding(
    session: Session,
    gw: PaymentGateway,
    merchant_id: str,
    return_url: str,
    refresh_url: str,
    actor: audit.Actor | None = None,
) -> dict[str, str]:
    """An onboarding link for the merchant (public id) to fill in its connected account, made
    first if it has none: `{"url", "stripe_account"}`. The caller commits. Given an `actor`,
    the request (and the account it made) is in the audit log."""
    found = session.execute(
        select(merchants.c.id, merchants.c.stripe_account_id).where(
            merchants.c.public_id == merchant_id
        )
    ).one_or_none()
    if found is None:
        raise NotFound("no such merchant")
    account_id = ensure_account(session, gw, found.id)
    if actor is not None:
        audit.record(
            session,
            actor,
            "merchant.stripe_account_link",
            "merchant",
            merchant_id,
            before={"stripe_account": found.stripe_account_id},
            after={"stripe_account": account_id},
        )
    session.commit()  # the account is kept; no transaction open across the next call
    url = gw.create_account_link(account_id, return_url, refresh_url)
    return {"url": url, "stripe_account": account_id}


# -- submitting --------------------------------------------------------------------------------


def _due() -> ColumnElement[bool]:
    """Instructions the job must act on: new ones, and submitted ones whose outcome is unknown."""
    return or_(
        instructions.c.status == "created",
        and_(instructions.c.status == "submitted", instructions.c.stripe_id.is_(None)),
    )


def submit_due(session: Session, gw: PaymentGateway, now: datetime) -> dict[str, int]:
    """Carry out every due instruction, oldest first, one transaction each (this commits).
    Returns how many ended in each state (`waiting`: an error to retry on the next run)."""
    due = session.scalars(
        select(instructions.c.id).where(_due()).order_by(instructions.c.id).limit(MAX_PER_RUN)
    ).all()
    session.rollback()
    outcomes: Counter[str] = Counter()
    for instruction_id in due:
        outcomes[submit(session, gw, instruction_id, now)] += 1
    return dict(outcomes)


def submit(session: Session, gw: PaymentGateway, instruction_id: int, now: datetime) -> str:
    """Carry out one instruction; returns its state after (or `waiting`). Safe to kill at any
    point and run again: it is marked `submitted` (and committed) before Stripe is called, and
    a `submitted` one is looked up at Stripe before anything is created."""
    row = session.execute(select(instructions).where(instructions.c.id == instruction_id)).one()
    session.rollback()
    try:
        if row.kind == "transfer":
            destination = ensure_account(session, gw, row.merchant_id)
        else:
            destination = ensure_customer(session, gw, row.merchant_id)
        session.commit()
    except GatewayError as exc:
        session.rollback()
        return _wait(session, instruction_id, f"merchant's Stripe {row.kind} side: {exc}")

    locked = _lock(session, instruction_id)
    if locked is None or not (
        locked.status == "created" or (locked.status == "submitted" and locked.stripe_id is None)
    ):
        session.rollback()  # done meanwhile (by a webhook)
        return locked.status if locked is not None else "skipped"
    seen_before = locked.status == "submitted"
    session.execute(
        update(instructions)
        .where(instructions.c.id == instruction_id)
        .values(
            status="submitted",
            attempts=instructions.c.attempts + 1,
            submitted_at=locked.submitted_at or now,
        )
    )
    session.commit()  # before Stripe: a crash from here on leaves it `submitted`
    faults.point("payments:submitted")

    details = _details(session, locked)
    session.rollback()
    try:
        result = _carry_out(gw, locked, destination, details, seen_before)
    except Refused as exc:
        return record_outcome(session, instruction_id, "failed", None, f"refused: {exc}", now)
    except Unavailable as exc:
        return _wait(session, instruction_id, str(exc))
    faults.point("payments:called")
    if isinstance(result, Transfer):
        outcome = "failed" if result.reversed else "succeeded"
        error = "the transfer was reversed" if result.reversed else None
        return record_outcome(session, instruction_id, outcome, result.id, error, now)
    return record_outcome(session, instruction_id, _invoice_outcome(result), result.id, None, now)


def _carry_out(
    gw: PaymentGateway,
    instruction: Row[Any],
    destination: str,
    details: dict[str, str],
    seen_before: bool,
) -> Transfer | Invoice:
    public_id = instruction.public_id
    metadata = {
        "instruction": public_id,
        "statement": details["statement"],
        "merchant": details["merchant"],
        "month": details["month"],
    }
    if instruction.kind == "transfer":
        # Tried before: the earlier call may have reached Stripe; adopt what it made.
        found = gw.find_transfer(public_id) if seen_before else None
        if found is not None:
            log.info("instruction %s: adopted transfer %s", public_id, found.id)
            return found
        return gw.create_transfer(
            public_id, instruction.amount_minor, instruction.currency, destination, metadata
        )
    existing = gw.find_invoice(public_id, destination) if seen_before else None
    return gw.send_invoice(
        public_id,
        destination,
        instruction.amount_minor,
        instruction.currency,
        f"Coalition statement {details['month']} ({details['statement']})",
        metadata,
        existing=existing,
    )


def _invoice_outcome(invoice: Invoice) -> str:
    if invoice.status == "paid":
        return "succeeded"
    if invoice.status in ("void", "uncollectible"):
        return "failed"
    return "submitted"  # open and sent: its events will tell


def _details(session: Session, instruction: Row[Any]) -> dict[str, str]:
    found = session.execute(
        select(
            statements.c.public_id.label("statement"),
            statements.c.month,
            merchants.c.public_id.label("merchant"),
        )
        .join(merchants, merchants.c.id == statements.c.merchant_id)
        .where(statements.c.id == instruction.statement_id)
    ).one()
    return {"statement": found.statement, "month": found.month, "merchant": found.merchant}


def _lock(session: Session, instruction_id: int) -> Row[Any] | None:
    return session.execute(
        select(instructions).where(instructions.c.id == instruction_id).with_for_update()
    ).one_or_none()


def _wait(session: Session, instruction_id: int, error: str) -> str:
    """Note why the instruction could not go on; the next run tries again."""
    log.warning("payment instruction %s waits: %s", instruction_id, error)
    session.execute(
        update(instructions)
        .where(instructions.c.id == instruction_id)
        .values(last_error=error[:2000])
    )
    session.commit()
    return "waiting"


def record_outcome(
    session: Session,
    instruction_id: int,
    outcome: str,
    stripe_id: str | None,
    error: str | None,
    now: datetime,
) -> str:
    """Record what became of an instruction, by the precedence in this module's docstring, in
    a transaction of its own; returns the state it is in afterwards."""
    locked = _lock(session, instruction_id)
    assert locked is not None
    state = _apply(session, locked, outcome, stripe_id, error, now)
    session.commit()
    return state


def _apply(
    session: Session,
    instruction: Row[Any],
    outcome: str,
    stripe_id: str | None,
    error: str | None,
    now: datetime,
) -> str:
    """Move a locked instruction to `outcome` unless it is already at a state of equal or
    higher rank; write the payout event of a transfer that reached an end."""
    values: dict[str, Any] = {}
    if stripe_id is not None and instruction.stripe_id is None:
        values["stripe_id"] = stripe_id
        values["last_error"] = None  # Stripe has it now; earlier errors are history
    ranks = RANKS[instruction.kind]
    moves = ranks[outcome] > ranks[instruction.status]
    if moves:
        values["status"] = outcome
        values["last_error"] = error
        if outcome in TERMINAL:
            values["finished_at"] = now
    elif outcome == instruction.status == "failed" and error:
        values["last_error"] = error  # another reason for the same end
    if values:
        session.execute(
            update(instructions).where(instructions.c.id == instruction.id).values(**values)
        )
    if moves and outcome in TERMINAL and instruction.kind == "transfer":
        _payout_event(session, instruction, outcome, stripe_id or instruction.stripe_id, now)
    return outcome if moves else str(instruction.status)


def _payout_event(
    session: Session, instruction: Row[Any], outcome: str, transfer_id: str | None, now: datetime
) -> None:
    statement = session.execute(
        select(statements.c.public_id, statements.c.month).where(
            statements.c.id == instruction.statement_id
        )
    ).one()
    # The statement's `payment` as `GET /api/v1/statements/{id}` shows it (its status the
    # instruction's: `succeeded` or `failed`), with the statement, its month and Stripe's transfer.
    data = {
        "payout": {
            "id": instruction.public_id,
            "kind": instruction.kind,
            "status": outcome,
            "amount": money(instruction.amount_minor, instruction.currency),
            "statement": statement.public_id,
            "month": statement.month,
            "transfer": transfer_id,
        }
    }
    event_type = "payout.paid" if outcome == "succeeded" else "payout.failed"
    outbox.emit(session, event_type, data, now, merchant_id=instruction.merchant_id)


def wait_for_stripe(session: Session) -> dict[str, int]:
    """Without Stripe configured nothing is sent (decision 84): every due instruction's
    `last_error` says why it waits, and this commits. Returns how many wait."""
    waiting = session.execute(
        update(instructions)
        .where(_due())
        .values(last_error=NOT_CONFIGURED)
        .returning(instructions.c.id)
    ).all()
    session.commit()
    return {"waiting": len(waiting)} if waiting else {}


# -- Stripe's events ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """What became of an inbound event: `new` False for a replay of a known event id."""

    new: bool
    instruction: str | None = None
    status: str | None = None
    membership: str | None = None


def receive_event(session: Session, event: dict[str, Any], now: datetime) -> Received:
    """Store a verified Stripe event once by its id and apply it, in the caller's transaction
    (a replay, even one racing the first delivery, changes nothing)."""
    stored = session.execute(
        insert_unless_present(session, stripe_events, ["id"])
        .values(
            id=str(event["id"]),
            type=str(event.get("type", "")),
            created=datetime.fromtimestamp(int(event.get("created") or 0), UTC),
            payload=event,
            received_at=now,
        )
        .returning(stripe_events.c.id)
    ).scalar_one_or_none()
    if stored is None:
        return Received(new=False)
    received = _handle(session, event, now)
    session.execute(
        update(stripe_events).where(stripe_events.c.id == stored).values(processed_at=now)
    )
    return received


def _handle(session: Session, event: dict[str, Any], now: datetime) -> Received:
    kind = str(event.get("type", ""))
    obj = (event.get("data") or {}).get("object") or {}
    if kind in INFORMATIONAL_EVENTS:
        log.info(
            "stripe %s for account %s: %s",
            kind,
            event.get("account") or obj.get("id"),
            {k: obj.get(k) for k in ("id", "status", "payouts_enabled", "failure_code")},
        )
        return Received(new=True)
    if kind in TRANSFER_EVENTS:
        reversed_minor = int(obj.get("amount_reversed") or 0)
        if reversed_minor >= int(obj.get("amount") or 0) > 0:
            return _on_object(session, obj, "transfer", "failed", "the transfer was reversed", now)
        if kind == "transfer.reversed":
            log.warning("transfer %s partly reversed: %s", obj.get("id"), reversed_minor)
            return Received(new=True)
        return _on_object(session, obj, "transfer", "succeeded", None, now)
    if kind in premium.EVENTS:
        state = premium.on_event(session, kind, obj, now)
        return Received(new=True, membership=state)
    if kind in INVOICE_OUTCOMES:
        outcome = INVOICE_OUTCOMES[kind]
        error = None if outcome == "succeeded" else kind.removeprefix("invoice.")
        return _on_object(session, obj, "invoice", outcome, error, now)
    return Received(new=True)  # stored, not ours to act on


def _on_object(
    session: Session,
    obj: dict[str, Any],
    kind: str,
    outcome: str,
    error: str | None,
    now: datetime,
) -> Received:
    """Apply an event about a Stripe transfer or invoice to the instruction it was made for."""
    object_id = str(obj.get("id", ""))
    public_id = (obj.get("metadata") or {}).get("instruction") or obj.get("transfer_group")
    query = select(instructions).with_for_update()
    if public_id:
        query = query.where(instructions.c.public_id == str(public_id))
    else:
        query = query.where(instructions.c.stripe_id == object_id)
    instruction = session.execute(query).one_or_none()
    if instruction is None or instruction.kind != kind:
        log.info("stripe %s %s names no payment instruction of ours", kind, object_id)
        return Received(new=True)
    total = obj.get("amount") if kind == "transfer" else obj.get("total")
    mismatch = (
        (instruction.stripe_id is not None and instruction.stripe_id != object_id)
        or (total is not None and int(total) != instruction.amount_minor)
        or str(obj.get("currency", instruction.currency)).upper() != instruction.currency
    )
    if mismatch:
        log.error(
            "stripe %s %s does not match instruction %s; ignored",
            kind,
            object_id,
            instruction.public_id,
        )
        return Received(new=True, instruction=instruction.public_id, status=instruction.status)
    state = _apply(session, instruction, outcome, object_id, error, now)
    return Received(new=True, instruction=instruction.public_id, status=state)
