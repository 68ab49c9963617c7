"""What a member chose to tell about itself (SPEC 2, segments and targeted offers): birth date,
household size, interests and region, each optional. Interests and regions come from fixed
lists (decision 301), so that a segment can name them and a member's choice always matches one.
Used for targeting only while the member's latest `profiling` consent is granted (segments
check it); exported and erased with the rest (privacy)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from coalition.database import table
from coalition.errors import InvalidRequest
from coalition.members.models import MemberAttributes

member_attributes = table(MemberAttributes)

# Decision 301: fixed lists, slugs in the API and the database, labels on pages.
INTERESTS = {
    "groceries": _l("Groceries and food"),
    "dining": _l("Restaurants and cafés"),
    "fashion": _l("Fashion"),
    "beauty": _l("Beauty and health"),
    "home": _l("Home and garden"),
    "electronics": _l("Electronics"),
    "sports": _l("Sports and outdoors"),
    "travel": _l("Travel"),
    "books": _l("Books, music and films"),
    "kids": _l("Children and family"),
    "pets": _l("Pets"),
    "motoring": _l("Cars and motoring"),
}
REGIONS = {
    "north": _l("North"),
    "north_east": _l("North-east"),
    "east": _l("East"),
    "south_east": _l("South-east"),
    "south": _l("South"),
    "south_west": _l("South-west"),
    "west": _l("West"),
    "north_west": _l("North-west"),
    "centre": _l("Centre"),
    "abroad": _l("Abroad"),
}
FIELDS = ("birth_date", "household_size", "interests", "region")
MIN_HOUSEHOLD, MAX_HOUSEHOLD = 1, 20
EARLIEST_BIRTH = date(1900, 1, 1)


def attributes_of(session: Session, member_id: int) -> dict[str, Any]:
    """The member's attributes, every field present (null: not given)."""
    row = session.execute(
        select(*(member_attributes.c[name] for name in FIELDS)).where(
            member_attributes.c.member_id == member_id
        )
    ).one_or_none()
    if row is None:
        return dict.fromkeys(FIELDS)
    found = dict(row._mapping)
    found["interests"] = found["interests"] or None
    return found


def _check(values: Mapping[str, Any], today: date) -> dict[str, Any]:
    """The values as stored (interests unique and sorted; an empty list is none), or
    InvalidRequest with errors per field."""
    errors: dict[str, list[str]] = {}
    clean = dict(values)
    born = values.get("birth_date")
    if born is not None and not EARLIEST_BIRTH <= born <= today:
        errors["birth_date"] = [f"must be between {EARLIEST_BIRTH} and today"]
    size = values.get("household_size")
    if size is not None and not MIN_HOUSEHOLD <= size <= MAX_HOUSEHOLD:
        errors["household_size"] = [f"must be between {MIN_HOUSEHOLD} and {MAX_HOUSEHOLD}"]
    if values.get("interests") is not None:
        unknown = [name for name in values["interests"] if name not in INTERESTS]
        if unknown:
            errors["interests"] = [f"unknown interests: {', '.join(sorted(set(unknown)))}"]
        clean["interests"] = sorted(set(values["interests"])) or None
    region = values.get("region")
    if region is not None and region not in REGIONS:
        errors["region"] = [f"must be one of {', '.join(REGIONS)}"]
    if errors:
        raise InvalidRequest("invalid attributes", errors=errors)
    return clean


def set_attributes(
    session: Session, member_id: int, changes: Mapping[str, Any], now: datetime, today: date
) -> dict[str, Any]:
    """Change the fields named in `changes` (None clears one), keep the others; returns the
    member's attributes after. A bad value changes nothing. A member that gave nothing (every
    field cleared) has no row."""
    unknown = set(changes) - set(FIELDS)
    if unknown:
        raise ValueError(f"unknown attributes {sorted(unknown)}")
    current = attributes_of(session, member_id)
    merged = _check({**current, **changes}, today)
    exists = session.execute(
        select(member_attributes.c.member_id).where(member_attributes.c.member_id == member_id)
    ).first()
    if all(merged[name] is None for name in FIELDS):
        if exists:
            session.execute(
                delete(member_attributes).where(member_attributes.c.member_id == member_id)
            )
    elif exists:
        session.execute(
            update(member_attributes)
            .where(member_attributes.c.member_id == member_id)
            .values(**merged, updated_at=now)
        )
    else:
        session.execute(
            insert(member_attributes).values(member_id=member_id, **merged, updated_at=now)
        )
    return merged


def forget(session: Session, member_id: int) -> None:
    """Erasure: the member's attributes are gone."""
    session.execute(delete(member_attributes).where(member_attributes.c.member_id == member_id))
