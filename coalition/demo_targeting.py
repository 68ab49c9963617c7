"""The demo's targeting (issue 16): half the members tell about themselves (birth date,
household, interests, region) and allow profiling, so that segments have members to count; once
the history is written, FreshCart keeps two segments of its customers (its regulars, and those
who stopped coming) and the operator one coalition-wide, each evaluated at once. Everything here
follows from a member's number, not from the demo's random draws, so that the rest of the demo
is the same with or without it."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Final

from sqlalchemy.orm import Session

from coalition.members import attributes
from coalition.privacy import services as privacy
from coalition.segments import services as segments
from coalition.segments.definitions import DefinitionIn

INTERESTS: Final = sorted(attributes.INTERESTS)
REGIONS: Final = sorted(attributes.REGIONS)
FRESHCART_SEGMENTS: Final = (
    ("Regulars (4+ visits in 30 days)", {"frequency": {"days": 30, "min": 4}}),
    ("Lapsed (nothing for 21 days)", {"lapsed_days": 21}),
)
COALITION_SEGMENTS: Final = (
    ("Families (a household of 3 or more)", {"household_size": {"min": 3}}),
)


def tell(session: Session, n: int, member_id: int, now: datetime, today: date) -> bool:
    """The `n`-th demo member's attributes and profiling consent, for every other member (the
    demo member Anna among them); whether it told any."""
    if n % 2:
        return False
    privacy.set_consents(session, member_id, {"profiling": True}, source=privacy.ME, now=now)
    attributes.set_attributes(
        session,
        member_id,
        {
            "birth_date": date(1958 + (n * 7) % 45, 1 + n % 12, 1 + n % 28),
            "household_size": 1 + n % 5,
            "interests": [INTERESTS[n % len(INTERESTS)], INTERESTS[(n * 5 + 1) % len(INTERESTS)]],
            "region": REGIONS[n % len(REGIONS)],
        },
        now,
        today,
    )
    return True


def keep_segments(session: Session, freshcart_id: int, now: datetime) -> dict[str, Any]:
    """FreshCart's and the operator's segments, evaluated as of `now`; their member counts by
    name."""
    counts = {}
    for owner, kept in (
        (segments.Owner(freshcart_id), FRESHCART_SEGMENTS),
        (segments.Owner(None), COALITION_SEGMENTS),
    ):
        for name, definition in kept:
            loaded = DefinitionIn().load(definition)
            segments.create(session, owner, name=name, definition=loaded, now=now)
            stored = segments.prepare(session, owner, loaded, now)
            counts[name] = segments.count(session, owner, stored, now)
    return counts
