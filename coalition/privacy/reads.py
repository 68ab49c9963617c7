"""Reads of privacy: a member's consents (now and their history), a merchant's audience, and a
member's export of all its data. Every query is scoped by the member or the merchant itself,
whatever row-level security would also allow (tenancy.py)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, column, exists, func, select, true
from sqlalchemy import table as core_table
from sqlalchemy.orm import Session

from coalition.database import table
from coalition.errors import NotFound
from coalition.ledger.models import Account, Transaction
from coalition.members import attributes
from coalition.members.models import Member
from coalition.privacy.models import CHANNELS, PURPOSES, Consent
from coalition.privacy.texts import TEXTS

consents = table(Consent)
members = table(Member)
accounts = table(Account)
transactions = table(Transaction)
# The coalition's directory, named rather than imported (the core does not import `merchants`).
merchants = core_table("merchants", column("id"), column("public_id"), column("name"))

# Bounds on one answer (TIGER_STYLE): the export's transactions, a member's consent history, an
# audience CSV.
MAX_EXPORT_TRANSACTIONS = 100_000
MAX_HISTORY = 1_000
MAX_AUDIENCE_CSV = 100_000
# The contact column each channel reaches a member by. Post has no address yet (the platform
# collects none): a partner gets the name, to pair with the address it holds itself.
CONTACT_OF = {"email": "email", "sms": "phone", "post": "name"}


@dataclass(frozen=True)
class ConsentRecord:
    purpose: str
    granted: bool
    text_version: str
    source: str
    client_id: str | None
    created_at: datetime


def history(session: Session, member_id: int) -> list[ConsentRecord]:
    """The member's consent records, oldest first (at most MAX_HISTORY, the latest ones)."""
    rows = session.execute(
        select(
            consents.c.purpose,
            consents.c.granted,
            consents.c.text_version,
            consents.c.source,
            consents.c.client_id,
            consents.c.created_at,
        )
        .where(consents.c.member_id == member_id)
        .order_by(consents.c.id.desc())
        .limit(MAX_HISTORY)
    ).all()
    return [ConsentRecord(*row) for row in reversed(rows)]


def current_consents(session: Session, member_id: int) -> dict[str, ConsentRecord]:
    """The latest record of each purpose the member ever recorded."""
    latest: dict[str, ConsentRecord] = {}
    for purpose in PURPOSES:
        row = session.execute(
            select(
                consents.c.purpose,
                consents.c.granted,
                consents.c.text_version,
                consents.c.source,
                consents.c.client_id,
                consents.c.created_at,
            )
            .where(consents.c.member_id == member_id, consents.c.purpose == purpose)
            .order_by(consents.c.id.desc())
            .limit(1)
        ).one_or_none()
        if row is not None:
            latest[purpose] = ConsentRecord(*row)
    return latest


def record_view(record: ConsentRecord) -> dict[str, Any]:
    return {
        "purpose": record.purpose,
        "granted": record.granted,
        "text_version": record.text_version,
        "source": record.source,
        "client_id": record.client_id,
        "at": record.created_at,
    }


def consents_view(session: Session, member_id: int) -> dict[str, Any]:
    """Each purpose's current state (never recorded: not granted), the text the member is
    asked to agree to now and its version, and the history, oldest first."""
    _active(session, member_id)
    current = current_consents(session, member_id)
    return {
        "consents": [
            {
                "purpose": purpose,
                "granted": purpose in current and current[purpose].granted,
                "text": str(TEXTS[purpose].text),
                "text_version": TEXTS[purpose].version,
                "granted_version": (
                    current[purpose].text_version
                    if purpose in current and current[purpose].granted
                    else None
                ),
                "changed_at": current[purpose].created_at if purpose in current else None,
            }
            for purpose in PURPOSES
        ],
        "history": [record_view(r) for r in history(session, member_id)],
    }


def _active(session: Session, member_id: int) -> Any:
    row = session.execute(
        select(
            members.c.public_id,
            members.c.card_number,
            members.c.status,
            members.c.email,
            members.c.phone,
            members.c.name,
            members.c.tier,
            members.c.created_at,
            accounts.c.id.label("account_id"),
            accounts.c.balance,
            accounts.c.debt,
        )
        .join(accounts, accounts.c.member_id == members.c.id)
        .where(members.c.id == member_id, members.c.status == "active")
    ).one_or_none()
    if row is None:
        raise NotFound("no such member")
    return row


# The audience -------------------------------------------------------------------------------


def latest_granted(purpose: str) -> ColumnElement[bool]:
    """Whether the member's latest record for `purpose` grants it (no record: it does not), as
    a condition on the `members` row of the query it is used in."""
    latest = (
        select(consents.c.granted)
        .where(consents.c.member_id == members.c.id, consents.c.purpose == purpose)
        .order_by(consents.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    return latest == true()


def audience_query(merchant_id: int, channel: str) -> Select[Any]:
    """SPEC 2: the members a merchant may contact by `channel`: active members who earned points
    at this merchant, whose latest consent for the channel and for sharing are both granted,
    and who have the channel's contact. For `web.api.paginate`, on `members.c.id`."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}")
    shopped_here = exists().where(
        transactions.c.member_account_id == accounts.c.id,
        transactions.c.merchant_id == merchant_id,
        transactions.c.type == "earn",
    )
    return (
        select(
            members.c.id,
            members.c.public_id,
            members.c.name,
            members.c.email,
            members.c.phone,
        )
        .join(accounts, accounts.c.member_id == members.c.id)
        .where(
            members.c.status == "active",
            members.c[CONTACT_OF[channel]].is_not(None),
            shopped_here,
            latest_granted(channel),
            latest_granted("sharing"),
        )
    )


def audience_view(channel: str) -> Any:
    """A row of `audience_query` as the API shows it: the channel's contact only."""

    def render(row: Any) -> dict[str, Any]:
        return {
            "member": row.public_id,
            "name": row.name,
            "email": row.email if channel == "email" else None,
            "phone": row.phone if channel == "sms" else None,
        }

    return render


def audience_count(session: Session, merchant_id: int, channel: str) -> int:
    query = audience_query(merchant_id, channel).subquery()
    return int(session.execute(select(func.count()).select_from(query)).scalar_one())


def audience_page(
    session: Session, merchant_id: int, channel: str, number: int, size: int
) -> tuple[list[dict[str, Any]], bool]:
    """Page `number` (from 1) of `size` audience members, newest first, and whether more
    follow (the portal's numbered pages)."""
    render = audience_view(channel)
    rows = session.execute(
        audience_query(merchant_id, channel)
        .order_by(members.c.id.desc())
        .offset((number - 1) * size)
        .limit(size + 1)
    ).all()
    return [render(row) for row in rows[:size]], len(rows) > size


def audience_all(session: Session, merchant_id: int, channel: str) -> Iterator[dict[str, Any]]:
    """The whole audience (at most MAX_AUDIENCE_CSV members), oldest member first, streamed."""
    render = audience_view(channel)
    result = session.execute(
        audience_query(merchant_id, channel)
        .order_by(members.c.id)
        .limit(MAX_AUDIENCE_CSV)
        .execution_options(yield_per=500)
    )
    for row in result:
        yield render(row)


# The export ---------------------------------------------------------------------------------


def export(session: Session, member_id: int, now: datetime) -> dict[str, Any]:
    """Everything the coalition keeps of the member (SPEC 2), as one JSON document: its profile,
    card, balance, the attributes it chose to tell, consents with their history, and every
    transaction at every merchant (at most MAX_EXPORT_TRANSACTIONS, the newest;
    `transactions_complete` says whether that was all)."""
    row = _active(session, member_id)
    lines = session.execute(
        select(
            transactions.c.public_id,
            transactions.c.type,
            transactions.c.points,
            transactions.c.amount_minor,
            transactions.c.currency,
            transactions.c.external_id,
            transactions.c.breakdown,
            transactions.c.reason,
            transactions.c.occurred_at,
            transactions.c.created_at,
            merchants.c.public_id.label("merchant_public_id"),
            merchants.c.name.label("merchant_name"),
        )
        .select_from(transactions)
        .outerjoin(merchants, merchants.c.id == transactions.c.merchant_id)
        .where(transactions.c.member_account_id == row.account_id)
        .order_by(transactions.c.id.desc())
        .limit(MAX_EXPORT_TRANSACTIONS + 1)
    ).all()
    complete = len(lines) <= MAX_EXPORT_TRANSACTIONS
    lines = list(reversed(lines[:MAX_EXPORT_TRANSACTIONS]))
    return {
        "exported_at": now,
        "profile": {
            "id": row.public_id,
            "email": row.email,
            "phone": row.phone,
            "name": row.name,
            "tier": row.tier,
            "created_at": row.created_at,
        },
        "cards": [{"card_number": row.card_number, "status": row.status}],
        "balance": {"points": row.balance, "debt": row.debt},
        "attributes": attributes.attributes_of(session, member_id),
        **consents_view(session, member_id),
        "transactions": [
            {
                "id": line.public_id,
                "type": line.type,
                "points": line.points,
                "merchant": (
                    None
                    if line.merchant_public_id is None
                    else {"id": line.merchant_public_id, "name": line.merchant_name}
                ),
                "amount": (
                    None
                    if line.amount_minor is None
                    else {"amount": line.amount_minor, "currency": line.currency}
                ),
                "external_id": line.external_id,
                "breakdown": line.breakdown,
                "reason": line.reason,
                "occurred_at": line.occurred_at,
                "created_at": line.created_at,
            }
            for line in lines
        ],
        "transactions_complete": complete,
    }
