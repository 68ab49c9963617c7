"""The coalition's economics (SPEC 2): operator-set terms, versioned by the business day they take
effect, with per-merchant overrides of the issuer-side settings. A day is always priced with the
terms in force on that day, so a version may only take effect on a day that has not begun: once a
day starts its terms are fixed, which is also what lets a process cache them for the day.

Coalition-wide only: `currency`, `point_value` (what a point is worth anywhere), `funding_model`,
`welcome_bonus` and `tiers` (both operator-funded), and `premium` (the paid membership's price and
earn multiplier, operator-funded; a version that leaves it out keeps the one in force). A merchant
may have its own `issue_price`, `operator_fee_rate`, `expiry_months` and `earn_rate_bounds`; its
versions merge setting by setting, and null removes one (decision 92)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Final

from flask import current_app
from sqlalchemy import Date, ForeignKey, Index, String, func, insert, select, text, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from coalition import clock
from coalition.database import BigId, Json, UTCDateTime, table
from coalition.errors import InvalidRequest
from coalition.extensions import Base, db
from coalition.ledger.models import Transaction

log = logging.getLogger(__name__)

FUNDING_MODELS: Final = ("prefunded", "on_redemption")
MERCHANT_SETTINGS: Final = (
    "issue_price",
    "operator_fee_rate",
    "expiry_months",
    "earn_rate_bounds",
    "pending_days_bounds",
    "merchant_hourly_points_limit",
)
# Settings added after the first versions: a version of the coalition's terms that leaves one
# out carries the value in force on its day (so clients written before it keep working).
VELOCITY_SETTINGS: Final = ("member_daily_points_limit", "merchant_hourly_points_limit")
CARRIED_SETTINGS: Final = ("pending_days_bounds", "premium", *VELOCITY_SETTINGS)
# SPEC 2, Pending points: a merchant's window is 0 to 60 days, within the operator's bounds.
MAX_PENDING_DAYS: Final = 60
# ISO 4217 currencies the coalition may settle in, with their minor units.
MINOR_UNIT_DIGITS: Final = {"EUR": 2, "USD": 2, "GBP": 2, "CHF": 2, "PLN": 2, "SEK": 2, "JPY": 0}
# The day before any business day: the first version of the terms takes effect from it.
BEGINNING: Final = date(2000, 1, 1)


class EconomicsVersion(Base):
    """The coalition's terms from `effective_from` on (merchant_id NULL), or one merchant's
    overrides of some of them. `terms` holds only the settings this version sets."""

    __tablename__ = "economics_versions"
    __table_args__ = (
        Index(
            "uq_economics_coalition_day",
            "effective_from",
            unique=True,
            sqlite_where=text("merchant_id IS NULL"),
            postgresql_where=text("merchant_id IS NULL"),
        ),
        Index(
            "uq_economics_merchant_day",
            "merchant_id",
            "effective_from",
            unique=True,
            sqlite_where=text("merchant_id IS NOT NULL"),
            postgresql_where=text("merchant_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    merchant_id: Mapped[int | None] = mapped_column(ForeignKey("merchants.id"))
    effective_from: Mapped[date] = mapped_column(Date)
    terms: Mapped[dict[str, Any]] = mapped_column(Json)
    actor_id: Mapped[str | None] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


@dataclass(frozen=True)
class Tier:
    name: str
    qualifying_spend: Decimal
    multiplier: Decimal


@dataclass(frozen=True)
class Premium:
    """The paid membership's terms (SPEC 2): a year of it costs `price_minor` (minor units of
    the coalition's currency) and multiplies what its member earns by `multiplier` (the extra
    points are the operator's); a reminder goes out `reminder_days` before it ends."""

    price_minor: int
    multiplier: Decimal
    reminder_days: int

    def to_json(self) -> dict[str, Any]:
        return {
            "price_minor": self.price_minor,
            "multiplier": str(self.multiplier),
            "reminder_days": self.reminder_days,
        }


DEFAULT_PREMIUM: Final = Premium(price_minor=2900, multiplier=Decimal("1.5"), reminder_days=30)


@dataclass(frozen=True)
class Terms:
    currency: str
    point_value: Decimal
    issue_price: Decimal
    operator_fee_rate: Decimal
    funding_model: str
    expiry_months: int
    earn_rate_bounds: tuple[Decimal, Decimal]
    welcome_bonus: int
    tiers: tuple[Tier, ...]
    # SPEC 2, Pending points: the shortest and longest pending window a merchant may set, days.
    pending_days_bounds: tuple[int, int] = (0, MAX_PENDING_DAYS)
    premium: Premium = DEFAULT_PREMIUM
    # Velocity limits (decision 209): the most points one member may spend in any 24 hours, and
    # the most points spent at one merchant in any hour; None: no limit.
    member_daily_points_limit: int | None = None
    merchant_hourly_points_limit: int | None = None

    @property
    def minor_units(self) -> int:
        return int(10 ** MINOR_UNIT_DIGITS[self.currency])

    def to_json(self) -> dict[str, Any]:
        """The terms as JSON: decimals as strings, never floats."""
        data = asdict(self)
        data["earn_rate_bounds"] = [str(b) for b in self.earn_rate_bounds]
        data["pending_days_bounds"] = list(self.pending_days_bounds)
        data["tiers"] = [
            {
                "name": t.name,
                "qualifying_spend": str(t.qualifying_spend),
                "multiplier": str(t.multiplier),
            }
            for t in self.tiers
        ]
        for key in ("point_value", "issue_price", "operator_fee_rate"):
            data[key] = str(data[key])
        data["premium"] = self.premium.to_json()
        return data

    def with_settings(self, settings: Mapping[str, Any]) -> Terms:
        """These terms with some settings replaced (values in their JSON form)."""
        return replace(self, **_parse(settings))


def _parse(settings: Mapping[str, Any]) -> dict[str, Any]:
    parsed: dict[str, Any] = {}
    for key, value in settings.items():
        if key in ("point_value", "issue_price", "operator_fee_rate"):
            parsed[key] = Decimal(value)
        elif key == "earn_rate_bounds":
            low, high = value
            parsed[key] = (Decimal(low), Decimal(high))
        elif key == "pending_days_bounds":
            shortest, longest = value
            parsed[key] = (int(shortest), int(longest))
        elif key == "tiers":
            parsed[key] = tuple(
                Tier(t["name"], Decimal(t["qualifying_spend"]), Decimal(t["multiplier"]))
                for t in value
            )
        elif key == "premium":
            parsed[key] = Premium(
                int(value["price_minor"]),
                Decimal(value["multiplier"]),
                int(value["reminder_days"]),
            )
        elif key in ("expiry_months", "welcome_bonus"):
            parsed[key] = int(value)
        elif key in VELOCITY_SETTINGS:
            parsed[key] = None if value is None else int(value)
        else:
            parsed[key] = value
    return parsed


# Every setting; a version of the coalition's terms sets them all.
COALITION_SETTINGS: Final = tuple(field.name for field in fields(Terms))


# SPEC 2's example terms: the first version, written by the migration that made the table.
DEFAULT_TERMS: Final = Terms(
    currency="EUR",
    point_value=Decimal("0.01"),
    issue_price=Decimal("0.0125"),
    operator_fee_rate=Decimal("0.15"),
    funding_model="prefunded",
    expiry_months=24,
    earn_rate_bounds=(Decimal("0.5"), Decimal("10")),
    welcome_bonus=100,
    tiers=(
        Tier("Member", Decimal("0"), Decimal("1")),
        Tier("Silver", Decimal("500"), Decimal("1.25")),
        Tier("Gold", Decimal("2000"), Decimal("1.5")),
        Tier("Platinum", Decimal("5000"), Decimal("2")),
    ),
)


def _versions() -> Any:
    return table(EconomicsVersion)


def _coalition_version(session: Session, day: date) -> Any | None:
    """The version of the coalition's terms in force on `day`: the latest from it or before."""
    versions = _versions()
    return session.execute(
        select(versions.c.terms, versions.c.effective_from)
        .where(versions.c.merchant_id.is_(None), versions.c.effective_from <= day)
        .order_by(versions.c.effective_from.desc())
        .limit(1)
    ).first()


def _overrides(
    session: Session, day: date, merchant_id: int | None = None
) -> dict[int, tuple[dict[str, Any], date]]:
    """Each merchant's overrides in force on `day` (one merchant's, given `merchant_id`) and the
    day of its latest version: its versions up to that day merged oldest first, setting by
    setting, a later value replacing an earlier one and null removing it (the merchant then
    has the coalition's)."""
    versions = _versions()
    scope = (
        versions.c.merchant_id.is_not(None)
        if merchant_id is None
        else versions.c.merchant_id == merchant_id
    )
    rows = session.execute(
        select(versions.c.merchant_id, versions.c.terms, versions.c.effective_from)
        .where(scope, versions.c.effective_from <= day)
        .order_by(versions.c.merchant_id, versions.c.effective_from)
    )
    # Versions are few (a handful per merchant and year): they are merged here.
    merged: dict[int, tuple[dict[str, Any], date]] = {}
    for row in rows:
        settings = merged.get(row.merchant_id, ({}, row.effective_from))[0]
        for name, value in row.terms.items():
            if value is None:
                settings.pop(name, None)
            else:
                settings[name] = value
        merged[row.merchant_id] = (settings, row.effective_from)
    return merged


def first_day(session: Session) -> date:
    """The day the coalition's first terms take effect (the migration's version: BEGINNING).
    Nothing can have happened before it, so nothing before it is settled or stated."""
    versions = _versions()
    found = session.execute(
        select(func.min(versions.c.effective_from)).where(versions.c.merchant_id.is_(None))
    ).scalar()
    return found or BEGINNING


def coalition_terms(session: Session, day: date) -> Terms:
    row = _coalition_version(session, day)
    return DEFAULT_TERMS.with_settings(row.terms) if row else DEFAULT_TERMS


def merchant_terms(session: Session, day: date) -> tuple[Terms, dict[int, Terms]]:
    """The coalition's terms on `day` and, for each merchant with overrides then, its own."""
    base = coalition_terms(session, day)
    overrides = _overrides(session, day)
    return base, {
        merchant_id: base.with_settings(settings)
        for merchant_id, (settings, _) in overrides.items()
    }


def in_force(session: Session, day: date, merchant_id: int | None = None) -> tuple[Terms, date]:
    """The terms in force on `day` (with a merchant's overrides, given one) and the day the
    latest version they come from took effect. Read from the database, never the cache."""
    row = _coalition_version(session, day)
    terms, since = (
        (DEFAULT_TERMS.with_settings(row.terms), row.effective_from)
        if row
        else (DEFAULT_TERMS, BEGINNING)
    )
    if merchant_id is not None:
        own = _overrides(session, day, merchant_id).get(merchant_id)
        if own is not None:
            settings, latest = own
            terms, since = terms.with_settings(settings), max(since, latest)
    return terms, since


_cache_lock = threading.Lock()


def terms_on(day: date, merchant_id: int | None = None, session: Session | None = None) -> Terms:
    """The terms a merchant trades under on `day`. A day's terms cannot change once it has
    begun (see the module's note), so they are cached per app for the day."""
    cache: dict[tuple[date, int | None], Terms] = current_app.extensions.setdefault(
        "coalition.economics", {}
    )
    key = (day, merchant_id)
    found = cache.get(key)
    if found is not None:
        return found
    terms, _ = in_force(session or db.session(), day, merchant_id)
    with _cache_lock:
        if len(cache) > 10_000:
            cache.clear()
        cache[key] = terms
    return terms


def terms_at(
    moment: datetime, merchant_id: int | None = None, session: Session | None = None
) -> Terms:
    """The terms in force on the business day (in COALITION_TIMEZONE) of `moment`: what a
    purchase or a redemption made then trades under."""
    day = clock.business_date(moment, current_app.config["COALITION_TIMEZONE"])
    return terms_on(day, merchant_id, session)


def forget() -> None:
    """Drop the cached terms (after writing a version for a day already cached: tests, demo)."""
    current_app.extensions.pop("coalition.economics", None)


def set_version(
    session: Session,
    *,
    effective_from: date,
    settings: Mapping[str, Any],
    merchant_id: int | None,
    actor_id: str | None,
    now: datetime,
) -> None:
    """Write the settings in force from `effective_from` (replacing a version of that same day).
    Callers check that the day has not begun; the demo and tests may write the past."""
    versions = _versions()
    values = {"terms": dict(settings), "actor_id": actor_id, "created_at": now}
    result = session.execute(
        update(versions).where(*_same_version(effective_from, merchant_id)).values(**values)
    )
    if not getattr(result, "rowcount", 0):
        session.execute(
            insert(versions).values(
                merchant_id=merchant_id, effective_from=effective_from, **values
            )
        )
    forget()


def _same_version(effective_from: date, merchant_id: int | None) -> list[Any]:
    versions = _versions()
    return [
        versions.c.effective_from == effective_from,
        versions.c.merchant_id.is_(None)
        if merchant_id is None
        else versions.c.merchant_id == merchant_id,
    ]


def schedule(session: Session, merchant_id: int | None = None) -> list[Any]:
    """Every version of the coalition's terms, or of one merchant's overrides, oldest first."""
    versions = _versions()
    return list(
        session.execute(
            select(
                versions.c.effective_from,
                versions.c.terms,
                versions.c.created_at,
                versions.c.actor_id,
            )
            .where(
                versions.c.merchant_id.is_(None)
                if merchant_id is None
                else versions.c.merchant_id == merchant_id
            )
            .order_by(versions.c.effective_from)
        ).all()
    )


def overridden_merchants(session: Session) -> list[int]:
    versions = _versions()
    return list(
        session.execute(
            select(versions.c.merchant_id)
            .where(versions.c.merchant_id.is_not(None))
            .group_by(versions.c.merchant_id)
        ).scalars()
    )


def days_of_change(session: Session, since: date) -> list[date]:
    """`since` and each later day on which a version (the coalition's or a merchant's) takes
    effect: the only days on which anyone's terms can differ from the day before."""
    versions = _versions()
    later = session.execute(
        select(versions.c.effective_from)
        .where(versions.c.effective_from > since)
        .group_by(versions.c.effective_from)
        .order_by(versions.c.effective_from)
    ).scalars()
    return [since, *later]


def change(
    session: Session,
    *,
    effective_from: date,
    settings: Mapping[str, Any],
    merchant_id: int | None,
    actor_id: str | None,
    now: datetime,
    zone: str,
) -> None:
    """The operator's change of the terms (SPEC 3.5), in force from `effective_from`: the whole
    set of the coalition's settings, or some of MERCHANT_SETTINGS for one merchant. Refused
    (422) for a business day that has begun, and for a new currency or funding model once
    anything has been traded; before that, either is set for every version at once.
    The settings' values are the caller's to validate (settlement.schemas)."""
    today = clock.business_date(now, zone)
    if effective_from <= today:
        raise InvalidRequest(
            f"the terms of {effective_from.isoformat()} are fixed: a change may take effect only"
            f" on a business day that has not begun (today is {today.isoformat()} in {zone})",
            errors={"effective_from": [f"must be after {today.isoformat()}"]},
        )
    if merchant_id is None:
        settings = _carried(session, settings, effective_from)
    _check_scope(settings, merchant_id)
    if merchant_id is None:
        before = coalition_terms(session, effective_from - timedelta(days=1)).to_json()
        settings = {**{name: before[name] for name in CARRIED_SETTINGS}, **settings}
    traded = _traded(session)
    if "currency" in settings:
        _check_currency(session, settings["currency"], today, traded)
    if "funding_model" in settings:
        _check_funding_model(session, settings["funding_model"], today, traded)
    replaced = session.execute(
        select(_versions().c.terms).where(*_same_version(effective_from, merchant_id))
    ).scalar()
    set_version(
        session,
        effective_from=effective_from,
        settings=settings,
        merchant_id=merchant_id,
        actor_id=actor_id,
        now=now,
    )
    if not traded:
        for name in ("currency", "funding_model"):
            if name in settings:
                _for_every_day(session, name, settings[name], actor_id)
    # The row of a replaced version is rewritten (one per day and scope): the log keeps what
    # it said, and who replaced it.
    log.info(
        "economics version written",
        extra={
            "effective_from": effective_from.isoformat(),
            "merchant_id": merchant_id,
            "actor_id": actor_id,
            "terms": dict(settings),
            "replaced_terms": replaced,
        },
    )


def _carried(session: Session, settings: Mapping[str, Any], day: date) -> dict[str, Any]:
    """The coalition's settings with those it may leave out (CARRIED_SETTINGS) taken from the
    terms in force on `day`."""
    missing = [name for name in CARRIED_SETTINGS if name not in settings]
    if not missing:
        return dict(settings)
    in_force_then = coalition_terms(session, day).to_json()
    return {**settings, **{name: in_force_then[name] for name in missing}}


def _check_scope(settings: Mapping[str, Any], merchant_id: int | None) -> None:
    if merchant_id is None:
        wrong = sorted((set(settings) ^ set(COALITION_SETTINGS)) - set(CARRIED_SETTINGS))
        why = "a version of the coalition's terms sets every setting, and only those"
    else:
        wrong = sorted(set(settings) - set(MERCHANT_SETTINGS))
        why = f"a merchant may override only {', '.join(MERCHANT_SETTINGS)}"
    if wrong:
        raise InvalidRequest(why, errors={"terms": {name: [why] for name in wrong}})


def _traded(session: Session) -> bool:
    """Whether anything has been traded (any transaction: the first is always an award)."""
    return session.execute(select(table(Transaction).c.id).limit(1)).first() is not None


def _check_currency(session: Session, currency: str, today: date, traded: bool) -> None:
    # SPEC 2: v1 runs one settlement currency per coalition.
    if currency not in MINOR_UNIT_DIGITS:
        raise InvalidRequest(
            f"{currency} is not a settlement currency",
            errors={"terms": {"currency": [f"must be one of {', '.join(MINOR_UNIT_DIGITS)}"]}},
        )
    current = coalition_terms(session, today).currency
    if currency != current and traded:
        raise InvalidRequest(
            f"v1 runs one settlement currency per coalition, and this one has traded in"
            f" {current}: its currency cannot change to {currency}",
            errors={"terms": {"currency": [f"must be {current}"]}},
        )


def _check_funding_model(session: Session, model: str, today: date, traded: bool) -> None:
    """Points are priced by the model in force when they are settled, not when they were issued:
    under prefunded the issuer paid at issue, under on_redemption it pays when they are spent.
    A switch after trading would charge points twice or reimburse points nobody paid for."""
    current = coalition_terms(session, today).funding_model
    if model != current and traded:
        raise InvalidRequest(
            f"the coalition has traded under {current}: points issued under it would be charged"
            f" twice or reimbursed unpaid under {model}, so its funding model cannot change",
            errors={"terms": {"funding_model": [f"must be {current}"]}},
        )


def _for_every_day(session: Session, name: str, value: str, actor_id: str | None) -> None:
    """Before anything is traded, the currency and the funding model are chosen for the
    coalition's whole schedule: every version of its terms, past and scheduled, takes `value`
    for `name`. Set only from a later day, they would leave the first trades under another
    value, and the change would come after trading, which is what is refused."""
    versions = _versions()
    rows = session.execute(
        select(versions.c.id, versions.c.effective_from, versions.c.terms).where(
            versions.c.merchant_id.is_(None)
        )
    ).all()
    for row in rows:
        if row.terms.get(name) != value:
            session.execute(
                update(versions)
                .where(versions.c.id == row.id)
                .values(terms={**row.terms, name: value})
            )
            log.info(
                f"economics version's {name} set before any trade",
                extra={
                    "effective_from": row.effective_from.isoformat(),
                    "actor_id": actor_id,
                    name: value,
                    f"replaced_{name}": row.terms.get(name),
                },
            )
    forget()


def pending_days(chosen: int, terms: Terms) -> int:
    """A merchant's pending window as it applies under `terms`: its own choice, kept within
    the operator's bounds in force (a change of the bounds never rewrites the merchant's)."""
    shortest, longest = terms.pending_days_bounds
    return min(max(chosen, shortest), longest)


def base_points(amount_minor: int, base_rate: Decimal, terms: Terms) -> int:
    """SPEC 2: points per currency unit at the merchant's base rate, floored."""
    return int(Decimal(amount_minor) * base_rate // terms.minor_units)


def value_minor(points: int, terms: Terms) -> int:
    """What `points` are worth in minor units of the currency, rounded half-even."""
    value = points * terms.point_value * terms.minor_units
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
