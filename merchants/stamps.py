"""Stamp cards' progress (SPEC 2, Earn rules: buy N in a category, get X points): the stamps
each member has collected on each of a merchant's cards since its last reward, read and written
under the member's lock (a purchase holds it), so two purchases of one member never lose a
stamp. `merchants.earning` says what a purchase adds; a refund takes no stamp back (the points a
reward gave are merchant-funded, clawed back in proportion like the others)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from coalition.database import table
from merchants.models import StampProgress

progress_table = table(StampProgress)

Progress = dict[int, dict[str, int]]  # member account id -> card name -> stamps


def progress(session: Session, merchant_id: int, account_ids: Collection[int]) -> Progress:
    """The members' stamps on the merchant's cards, in one query."""
    found: Progress = {account_id: {} for account_id in account_ids}
    if not account_ids:
        return found
    rows = session.execute(
        select(
            progress_table.c.member_account_id, progress_table.c.card, progress_table.c.stamps
        ).where(
            progress_table.c.merchant_id == merchant_id,
            progress_table.c.member_account_id.in_(sorted(account_ids)),
        )
    )
    for row in rows:
        found[row.member_account_id][row.card] = row.stamps
    return found


def save(
    session: Session, merchant_id: int, changed: Mapping[tuple[int, str], int], now: datetime
) -> None:
    """Write the stamps each (member account, card) has now, in one statement."""
    if not changed:
        return
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(progress_table)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["member_account_id", "merchant_id", "card"],
            set_={"stamps": statement.excluded.stamps, "updated_at": statement.excluded.updated_at},
        ),
        [
            {
                "member_account_id": account_id,
                "merchant_id": merchant_id,
                "card": card,
                "stamps": stamps,
                "updated_at": now,
            }
            for (account_id, card), stamps in sorted(changed.items())
        ],
    )
