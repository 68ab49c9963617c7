"""A merchant's earn rules as data (SPEC 2, Earn rules): versions of a rules document, each in
force from its `effective_from` until the next one's. `put` (the one writer) writes a new
version in force from now; a purchase is earned under the version in force at its
`occurred_at` (`in_force_at`, `versions_between` for a batch), and the transaction keeps its
number.

A merchant that never set its rules earns at `merchants.base_rate` alone: its version 1,
implicit. The first `put` writes that version 1 down (in force from the beginning of time) before
its own version 2, so that a purchase dated before the change is still earned under it.
`merchants.base_rate` always mirrors the base rate of the latest version, for the readers of
the merchants' directory and the operator's checks of the earn-rate bounds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from flask import current_app
from sqlalchemy import Select, and_, func, insert, or_, select, update
from sqlalchemy.orm import Session

from coalition import clock, economics
from coalition.database import table
from coalition.errors import InvalidRequest, NotFound
from coalition.segments.models import segments
from merchants.earning import Rules
from merchants.models import EarnRulesVersion, Merchant
from merchants.services import check_base_rate

merchants = table(Merchant)
earn_rules = table(EarnRulesVersion)

IMPLICIT_VERSION = 1
# The implicit version 1 is in force from before anything could be bought.
BEGINNING = datetime(2000, 1, 1, tzinfo=UTC)


def decimal_text(value: Decimal | str) -> str:
    """A decimal as the rules document keeps it: `"1.5"`, never `"1.5000"` nor `"1.5E+1"`."""
    return format(Decimal(value).normalize(), "f")


def implicit_document(base_rate: Decimal | str) -> dict[str, Any]:
    """The rules of a merchant that never set any: its base rate, nothing else."""
    return {
        "base_rate": decimal_text(base_rate),
        "category_multipliers": {},
        "campaigns": [],
        "max_points_per_purchase": None,
        "stamp_cards": [],
    }


def normalised(document: Mapping[str, Any]) -> dict[str, Any]:
    """A validated document (`merchants.schemas.EarnRulesIn`) as it is stored: every key, decimals
    as plain strings, times as UTC ISO 8601."""
    return {
        "base_rate": decimal_text(document["base_rate"]),
        "category_multipliers": {
            name: decimal_text(value)
            for name, value in sorted((document.get("category_multipliers") or {}).items())
        },
        "campaigns": [
            {
                "name": c["name"],
                "multiplier": decimal_text(c["multiplier"]),
                "starts_at": c["starts_at"].astimezone(UTC).isoformat(),
                "ends_at": c["ends_at"].astimezone(UTC).isoformat(),
                "categories": list(c["categories"]) if c.get("categories") else None,
                "stores": list(c["stores"]) if c.get("stores") else None,
                **_targeting(c),
            }
            for c in document.get("campaigns") or ()
        ],
        "max_points_per_purchase": document.get("max_points_per_purchase"),
        "stamp_cards": [
            {"name": s["name"], "category": s["category"], "buy": s["buy"], "reward": s["reward"]}
            for s in document.get("stamp_cards") or ()
        ],
    }


def _targeting(campaign: Mapping[str, Any]) -> dict[str, Any]:
    """A campaign's targeting keys as stored (`merchants.targeting`): each one always present,
    its default when the document leaves it out."""
    pilot = campaign.get("pilot")
    return {
        "kind": campaign.get("kind") or "standard",
        "segment": campaign.get("segment"),
        "regions": list(campaign["regions"]) if campaign.get("regions") else None,
        "lapsed_days": campaign.get("lapsed_days"),
        "pilot": (
            {"stores": list(pilot["stores"]), "until": pilot["until"].astimezone(UTC).isoformat()}
            if pilot
            else None
        ),
        "control_percent": campaign.get("control_percent") or 0,
    }


TARGETING_DEFAULTS: dict[str, Any] = {
    "kind": "standard",
    "segment": None,
    "regions": None,
    "lapsed_days": None,
    "pilot": None,
    "control_percent": 0,
}


def completed(document: Mapping[str, Any]) -> Mapping[str, Any]:
    """A stored document with every campaign's targeting keys (their defaults where a document
    written before them has none)."""
    campaigns = document.get("campaigns") or []
    if all(TARGETING_DEFAULTS.keys() <= c.keys() for c in campaigns):
        return document
    return {**document, "campaigns": [{**TARGETING_DEFAULTS, **c} for c in campaigns]}


def _check_segments(session: Session, merchant_id: int, document: Mapping[str, Any]) -> None:
    """Each segment a campaign targets is one of the merchant's own, not deleted: another
    merchant's, or the operator's, is refused as unknown (nothing tells it exists)."""
    wanted = {c["segment"] for c in document["campaigns"] if c["segment"]}
    if not wanted:
        return
    own = set(
        session.execute(
            select(segments.c.public_id).where(
                segments.c.merchant_id == merchant_id,
                segments.c.public_id.in_(sorted(wanted)),
                segments.c.deleted_at.is_(None),
            )
        ).scalars()
    )
    unknown = {
        str(index): {"segment": ["no such segment of yours"]}
        for index, c in enumerate(document["campaigns"])
        if c["segment"] and c["segment"] not in own
    }
    if unknown:
        raise InvalidRequest(
            "a campaign targets a segment that is not one of yours",
            errors={"campaigns": unknown},
        )


@dataclass(frozen=True)
class RulesVersion:
    """A version of a merchant's rules: its number, since when, the document, who wrote it."""

    version: int
    effective_from: datetime
    document: Mapping[str, Any]
    actor_id: str | None = None
    created_at: datetime | None = None

    def __post_init__(self) -> None:
        # A document stored before targeting reads with its campaigns' defaults.
        object.__setattr__(self, "document", completed(self.document))

    @property
    def rules(self) -> Rules:
        return Rules.from_document(self.document, self.version)


def _in_force(merchant_id: Any, at: Any) -> Select[Any]:
    return (
        select(
            earn_rules.c.version,
            earn_rules.c.effective_from,
            earn_rules.c.document,
            earn_rules.c.actor_id,
            earn_rules.c.created_at,
        )
        .where(earn_rules.c.merchant_id == merchant_id, earn_rules.c.effective_from <= at)
        .order_by(earn_rules.c.effective_from.desc(), earn_rules.c.version.desc())
        .limit(1)
    )


def rules_columns(merchant_id: Any, at: Any) -> tuple[Any, ...]:
    """The version in force at `at` and its document as columns (`rules_version`,
    `rules_document`; both NULL for a merchant on its implicit version), and the merchant's base
    rate (`rate`) and cap (`issuance_cap`), for a purchase to read with its member."""
    found = _in_force(merchant_id, at)
    version = found.with_only_columns(earn_rules.c.version).scalar_subquery()
    document = found.with_only_columns(earn_rules.c.document).scalar_subquery()
    rate = select(merchants.c.base_rate).where(merchants.c.id == merchant_id).scalar_subquery()
    cap = (
        select(merchants.c.monthly_issuance_cap)
        .where(merchants.c.id == merchant_id)
        .scalar_subquery()
    )
    return (
        version.label("rules_version"),
        document.label("rules_document"),
        rate.label("rate"),
        cap.label("issuance_cap"),
    )


def from_columns(row: Any) -> Rules:
    """The rules `rules_columns` read."""
    if row.rules_version is None:
        return Rules(base_rate=Decimal(row.rate), version=IMPLICIT_VERSION)
    return Rules.from_document(row.rules_document, row.rules_version)


def in_force_at(session: Session, merchant_id: int, at: datetime) -> RulesVersion:
    """The merchant's version in force at `at`."""
    row = session.execute(_in_force(merchant_id, at)).first()
    if row is not None:
        return RulesVersion(*row)
    rate = session.execute(
        select(merchants.c.base_rate).where(merchants.c.id == merchant_id)
    ).scalar_one_or_none()
    if rate is None:
        raise NotFound("no such merchant")
    return RulesVersion(IMPLICIT_VERSION, BEGINNING, implicit_document(rate))


@dataclass(frozen=True)
class Schedule:
    """The versions of one merchant's rules that a set of moments fall under (a batch)."""

    versions: tuple[RulesVersion, ...]  # newest first
    implicit: Rules | None

    def at(self, moment: datetime) -> Rules:
        for version in self.versions:
            if version.effective_from <= moment:
                return version.rules
        if self.implicit is None:
            raise AssertionError("a moment before every version of the rules")
        return self.implicit


def versions_between(
    session: Session, merchant_id: int, first: datetime, last: datetime
) -> Schedule:
    """The versions in force at some moment from `first` to `last`, in one query: the one in
    force at `first`, and those that took effect after it, up to `last`."""
    floor = (
        select(func.max(earn_rules.c.effective_from))
        .where(earn_rules.c.merchant_id == merchant_id, earn_rules.c.effective_from <= first)
        .scalar_subquery()
    )
    rows = session.execute(
        select(
            earn_rules.c.version,
            earn_rules.c.effective_from,
            earn_rules.c.document,
            merchants.c.base_rate,
        )
        .select_from(merchants)
        .outerjoin(
            earn_rules,
            and_(
                earn_rules.c.merchant_id == merchants.c.id,
                earn_rules.c.effective_from <= last,
                or_(floor.is_(None), earn_rules.c.effective_from >= floor),
            ),
        )
        .where(merchants.c.id == merchant_id)
        .order_by(earn_rules.c.effective_from.desc(), earn_rules.c.version.desc())
    ).all()
    found = tuple(
        RulesVersion(r.version, r.effective_from, r.document) for r in rows if r.version is not None
    )
    # Without a version in force at `first`, the merchant was on its implicit version then.
    covered = found and found[-1].effective_from <= first
    implicit = None
    if not covered and rows:
        implicit = Rules(base_rate=Decimal(rows[0].base_rate), version=IMPLICIT_VERSION)
    return Schedule(found, implicit)


def history(session: Session, merchant_id: int) -> list[RulesVersion]:
    """Every version of the merchant's rules, newest first (the implicit one if it has none)."""
    rows = session.execute(
        select(
            earn_rules.c.version,
            earn_rules.c.effective_from,
            earn_rules.c.document,
            earn_rules.c.actor_id,
            earn_rules.c.created_at,
        )
        .where(earn_rules.c.merchant_id == merchant_id)
        .order_by(earn_rules.c.version.desc())
    ).all()
    if rows:
        return [RulesVersion(*row) for row in rows]
    return [in_force_at(session, merchant_id, BEGINNING)]


def _bounds(session: Session, merchant_id: int, now: datetime) -> list[tuple[Decimal, Decimal]]:
    """The merchant's earn-rate bounds today and in every version of the terms scheduled."""
    today: date = clock.business_date(now, current_app.config["COALITION_TIMEZONE"])
    return [
        economics.in_force(session, day, merchant_id)[0].earn_rate_bounds
        for day in economics.days_of_change(session, today)
    ]


def put(
    session: Session,
    *,
    merchant_id: int,
    document: Mapping[str, Any],
    actor_id: str | None,
    now: datetime,
) -> RulesVersion:
    """A new version of the merchant's rules (validated by `EarnRulesIn`), in force from `now`.
    Refused (422) for a base rate outside the operator's earn-rate bounds, today's or any
    scheduled, and for a campaign targeting a segment that is not the merchant's own. Versions
    are numbered under the merchant row's lock, one after the other. The rules already in force
    write no version: they are returned as they are."""
    stored = normalised(document)
    check_base_rate(Decimal(stored["base_rate"]), _bounds(session, merchant_id, now))
    _check_segments(session, merchant_id, stored)
    base_rate = session.execute(
        select(merchants.c.base_rate).where(merchants.c.id == merchant_id).with_for_update()
    ).scalar_one_or_none()
    if base_rate is None:
        raise NotFound("no such merchant")
    current = in_force_at(session, merchant_id, now)
    if current.document == stored:
        return current  # the rules in force already: nothing to change
    latest = session.execute(
        select(func.max(earn_rules.c.version)).where(earn_rules.c.merchant_id == merchant_id)
    ).scalar()
    rows = []
    if latest is None:
        rows.append(
            {
                "version": IMPLICIT_VERSION,
                "effective_from": BEGINNING,
                "document": implicit_document(base_rate),
                "actor_id": None,
            }
        )
        latest = IMPLICIT_VERSION
    rows.append(
        {
            "version": latest + 1,
            "effective_from": now,
            "document": stored,
            "actor_id": actor_id,
        }
    )
    session.execute(
        insert(earn_rules),
        [{**row, "merchant_id": merchant_id, "created_at": now} for row in rows],
    )
    session.execute(
        update(merchants)
        .where(merchants.c.id == merchant_id)
        .values(base_rate=Decimal(stored["base_rate"]))
    )
    return RulesVersion(latest + 1, now, stored, actor_id, now)
