"""A segment's members, as one set-based SQL query (SQLAlchemy Core; PostgreSQL and SQLite):
the owner's population (a merchant's customers: members with a purchase there; the operator's:
every member), active, with the latest `profiling` consent granted (decision 304), narrowed by
each criterion of the definition (`definitions`). Purchases are `earn` transactions, timed by
when they were recorded (`created_at`), as tiers count them; a merchant's segment counts only
its own. Windows are the last N days before `now` (decision 305)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    and_,
    case,
    cast,
    exists,
    false,
    func,
    or_,
    select,
)

from coalition.database import table
from coalition.ledger.models import Account, Transaction
from coalition.members.models import Member, MemberAttributes
from coalition.privacy.reads import latest_granted

members = table(Member)
accounts = table(Account)
transactions = table(Transaction)
member_attributes = table(MemberAttributes)


def years_before(today: date, years: int) -> date:
    """The same day `years` earlier (28 February for a 29th in a year without one)."""
    try:
        return today.replace(year=today.year - years)
    except ValueError:
        return today.replace(year=today.year - years, day=28)


def age_on(born: date, today: date) -> int:
    """Whole years from `born` to `today`."""
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def _purchases(merchant_id: int | None) -> list[ColumnElement[bool]]:
    """The purchases a segment of this owner counts, of the member in the outer query."""
    found = [transactions.c.member_account_id == accounts.c.id, transactions.c.type == "earn"]
    if merchant_id is not None:
        found.append(transactions.c.merchant_id == merchant_id)
    return found


def _aggregate(merchant_id: int | None, when: Any, value: Any, function: Any) -> Any:
    """`function(value)` over the owner's purchases of the member recorded since `when`."""
    where = _purchases(merchant_id)
    if when is not None:
        where.append(transactions.c.created_at >= when)
    return select(function(value)).where(*where).scalar_subquery()


def _range(value: Any, bounds: Mapping[str, int]) -> list[ColumnElement[bool]]:
    found = []
    if "min" in bounds:
        found.append(value >= bounds["min"])
    if "max" in bounds:
        found.append(value <= bounds["max"])
    return found


def members_query(
    definition: Mapping[str, Any],
    *,
    merchant_id: int | None,
    partner_ids: Sequence[int] = (),
    now: datetime,
    today: date,
) -> Select[Any]:
    """The ids (`member_id`) of the members the definition holds for its owner (`merchant_id`
    None: the operator), as of `now` (ages on `today`). `partner_ids` are the internal ids of the
    definition's `partners`, in its order."""
    where: list[ColumnElement[bool]] = [members.c.status == "active", latest_granted("profiling")]
    if merchant_id is not None:
        where.append(exists().where(*_purchases(merchant_id)))

    def since(days: int) -> datetime:
        return now - timedelta(days=days)

    last = _aggregate(merchant_id, None, transactions.c.created_at, func.max)
    if "recency_days" in definition:
        where.append(last >= since(definition["recency_days"]))
    if "lapsed_days" in definition:
        where.append(and_(last.is_not(None), last < since(definition["lapsed_days"])))
    if "frequency" in definition:
        frequency = definition["frequency"]
        count = _aggregate(merchant_id, since(frequency["days"]), transactions.c.id, func.count)
        where.extend(_range(count, frequency))
    if "spend" in definition:
        spend = definition["spend"]
        if spend["unit"] == "money":
            value: Any = case(
                (transactions.c.currency == spend["currency"], transactions.c.amount_minor),
                else_=0,
            )
        else:
            value = transactions.c.points
        total = func.coalesce(_aggregate(merchant_id, since(spend["days"]), value, func.sum), 0)
        where.extend(_range(total, spend))
    if "tiers" in definition:
        where.append(members.c.tier.in_(definition["tiers"]))
    if "stores" in definition and merchant_id is not None:
        where.append(
            exists().where(*_purchases(merchant_id), transactions.c.store.in_(definition["stores"]))
        )
    if "partners" in definition:
        visited = [
            exists().where(*_purchases(None), transactions.c.merchant_id == partner)
            for partner in partner_ids
        ]
        if not visited:
            where.append(false())
        elif definition["partners"].get("match", "any") == "all":
            where.append(and_(*visited))
        else:
            where.append(or_(*visited))
    where.extend(_attribute_criteria(definition, today))
    return (
        select(members.c.id.label("member_id"))
        .select_from(
            members.join(accounts, accounts.c.member_id == members.c.id).outerjoin(
                member_attributes, member_attributes.c.member_id == members.c.id
            )
        )
        .where(*where)
    )


def _attribute_criteria(definition: Mapping[str, Any], today: date) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if "age" in definition:
        born = member_attributes.c.birth_date
        age = definition["age"]
        if "min" in age:
            where.append(born <= years_before(today, age["min"]))
        if "max" in age:
            where.append(born > years_before(today, age["max"] + 1))
        where.append(born.is_not(None))
    if "household_size" in definition:
        size = member_attributes.c.household_size
        where.extend([size.is_not(None), *_range(size, definition["household_size"])])
    if "interests" in definition:
        # Interests are slugs of a fixed list, kept as a JSON list of strings: each is found
        # as its quoted self in the list's text, on both databases.
        listed = cast(member_attributes.c.interests, String)
        where.append(
            or_(
                *(listed.contains(f'"{name}"', autoescape=True) for name in definition["interests"])
            )
        )
    if "regions" in definition:
        where.append(member_attributes.c.region.in_(definition["regions"]))
    return where
