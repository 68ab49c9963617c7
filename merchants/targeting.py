"""Who a targeted campaign reaches (SPEC 2, segments and targeted offers): the member context a
purchase needs, read only when a targeted campaign runs at its moment and store, and only as
the names of the campaigns that reach the member (`merchants.earning.Audience`).

A campaign targets members by a segment (one of the merchant's own: its members as last
evaluated, `segment_members`), by regions (the region the member gave), or by its kind:
`birthday` (a purchase whose business date is within `BIRTHDAY_DAYS` of the member's birthday,
decision 309) or `win_back` (the member had bought here before, and `lapsed_days` or more passed
since its last purchase here, decision 311). Every target uses only members whose latest
`profiling` consent is granted (decision 308): without it, no targeted bonus. Of the members a
campaign targets, `control_percent` out of 100 are held out by a hash of the merchant, the
campaign's name and the member (`held_out`, decision 312): stable across purchases.

The facts (consent, birth date, region, segments, past purchases) are read as the system, where
row-level security would hide a member's attributes from its merchant, and never leave this
module: only the booleans do."""

from __future__ import annotations

import functools
import hashlib
from bisect import bisect_right, insort
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import and_, bindparam, func, insert, select
from sqlalchemy.orm import Session

from coalition import clock, tenancy
from coalition.database import Hot, UTCDateTime, table
from coalition.ledger.models import Transaction
from coalition.members.models import Member, MemberAttributes
from coalition.privacy.models import Consent
from coalition.privacy.reads import latest_granted
from coalition.segments.models import segment_members, segments
from merchants.earning import Audience, Basket, Campaign, Rules
from merchants.models import CampaignExposure

transactions = table(Transaction)
attributes = table(MemberAttributes)
members = table(Member)
consents = table(Consent)
exposures = table(CampaignExposure)

# Before any purchase (a bound for a look-up that must find none).
BEGINNING = datetime(2000, 1, 1, tzinfo=UTC)
# (decision 309) a birthday campaign's window: the birthday, and a week either side of it.
BIRTHDAY_DAYS = 7
PURPOSE = "profiling"


def held_out(merchant_id: int, campaign: str, member_id: int, percent: int) -> bool:
    """Whether the member is in the campaign's control group (decision 312): the first 8 bytes
    of SHA-256 of `merchant:campaign:member`, modulo 100, below `percent`."""
    if percent <= 0:
        return False
    digest = hashlib.sha256(f"{merchant_id}:{campaign}:{member_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100 < percent


def running(rules: Rules, moment: datetime, store: str | None) -> tuple[Campaign, ...]:
    """The targeted campaigns of `rules` that run at `moment` in `store`: none, for most
    purchases, which then read no member context."""
    return tuple(c for c in rules.campaigns if c.targeted and c.runs_at(moment, store))


def near_birthday(day: date, birth_date: date) -> bool:
    """Whether `day` is within `BIRTHDAY_DAYS` of a birthday (29 February: the 28th in a year
    without one), the birthday of the year before, of the year, or of the next."""
    for year in (day.year - 1, day.year, day.year + 1):
        try:
            birthday = birth_date.replace(year=year)
        except ValueError:
            birthday = date(year, 2, 28)
        if abs((day - birthday).days) <= BIRTHDAY_DAYS:
            return True
    return False


@dataclass
class _Facts:
    """What targeting knows of one member: never returned."""

    consent: bool = False
    birth_date: date | None = None
    region: str | None = None
    segments: set[str] = field(default_factory=set)
    # Its purchases here (their moments) as far back as a win-back looks, sorted (one member's
    # last one only, for a single purchase); and whether it bought here before that.
    bought: list[datetime] = field(default_factory=list)
    bought_before: bool = False


@dataclass
class Context:
    """The member context of a purchase or a batch's lines, loaded once (`load`)."""

    merchant_id: int
    zone: str
    facts: dict[int, _Facts]  # by member id

    def audience(self, member_id: int, campaigns: Sequence[Campaign], moment: datetime) -> Audience:
        """Which of `campaigns` (from `running`) reach the member at `moment`."""
        facts = self.facts.get(member_id) or _Facts()
        targeted = frozenset(c.name for c in campaigns if self._targets(c, facts, moment))
        return Audience(
            targeted,
            frozenset(
                c.name
                for c in campaigns
                if c.name in targeted
                and held_out(self.merchant_id, c.name, member_id, c.control_percent)
            ),
        )

    def _targets(self, campaign: Campaign, facts: _Facts, moment: datetime) -> bool:
        if not facts.consent:
            return False
        if campaign.segment is not None and campaign.segment not in facts.segments:
            return False
        if campaign.regions is not None and facts.region not in campaign.regions:
            return False
        if campaign.kind == "birthday":
            day = clock.business_date(moment, self.zone)
            return facts.birth_date is not None and near_birthday(day, facts.birth_date)
        if campaign.kind == "win_back":
            return self._lapsed(facts, moment, timedelta(days=campaign.lapsed_days or 0))
        return True

    @staticmethod
    def _lapsed(facts: _Facts, moment: datetime, lapse: timedelta) -> bool:
        """Whether the member bought here before (a purchase recorded at the same moment
        counts as before), the last time `lapse` or more before `moment`."""
        earlier = bisect_right(facts.bought, moment)
        if earlier:
            return moment - facts.bought[earlier - 1] >= lapse
        return facts.bought_before

    def bought(self, member_id: int, moment: datetime) -> None:
        """A purchase of the member recorded (a batch's earlier line counts for its later ones)."""
        facts = self.facts.get(member_id)
        if facts is not None:
            insort(facts.bought, moment)

    @classmethod
    def load(
        cls,
        session: Session,
        merchant_id: int,
        members: Iterable[tuple[int, int]],
        campaigns: Iterable[Campaign],
        moments: Sequence[datetime],
    ) -> Context:
        """The context of `members` (member id, account id) for `campaigns` (those running at
        any of `moments`): only the facts those campaigns ask for."""
        zone = current_app.config["COALITION_TIMEZONE"]
        accounts = dict(members)
        wanted = list(campaigns)
        facts = {member_id: _Facts() for member_id in accounts}
        lapses = [c.lapsed_days for c in wanted if c.kind == "win_back" and c.lapsed_days]
        since = min(moments) - timedelta(days=max(lapses)) if lapses else None
        if not facts or not wanted:
            return cls(merchant_id, zone, facts)
        # One purchase: its member's last purchase here comes with the rest, one query in all.
        single = len(accounts) == 1 and len(set(moments)) == 1
        with tenancy.acting_as(tenancy.SYSTEM, session):
            _read_facts(
                session,
                merchant_id,
                accounts,
                wanted,
                facts,
                last_until=moments[0] if single and since is not None else None,
            )
            if since is not None and not single:
                _read_purchases(session, merchant_id, accounts, since, max(moments), facts)
        return cls(merchant_id, zone, facts)


@functools.cache
def _facts_statement(described: bool, named: int, single: bool) -> Hot:
    """The facts query for campaigns that need attributes (`described`), name `named`
    segments (bound as `segment_0`...), and for one member with its last purchase (`single`:
    `member`, `account`, `until`) or many (`ids`): built once per shape."""
    member = members.c.id
    columns: list[Any] = [member, latest_granted(PURPOSE).label("consent")]
    if described:
        columns += [attributes.c.birth_date, attributes.c.region]
    for number in range(named):
        inside = (
            select(segment_members.c.member_id)
            .join(segments, segments.c.id == segment_members.c.segment_id)
            .where(
                segment_members.c.member_id == member,
                segments.c.merchant_id == bindparam("merchant_id"),
                segments.c.public_id == bindparam(f"segment_{number}"),
                segments.c.deleted_at.is_(None),
            )
            .exists()
        )
        columns.append(inside.label(f"segment_{number}"))
    if single:
        moment = purchase_moment()
        last = select(func.max(moment)).where(
            transactions.c.merchant_id == bindparam("merchant_id"),
            transactions.c.type == "earn",
            transactions.c.member_account_id == bindparam("account"),
            moment <= bindparam("until", type_=UTCDateTime()),
        )
        columns.append(last.scalar_subquery().label("last_purchase"))
    which = (
        member == bindparam("member") if single else member.in_(bindparam("ids", expanding=True))
    )
    query = select(*columns).select_from(members).where(which)
    if described:
        query = query.outerjoin(attributes, attributes.c.member_id == member)
    return Hot(query)


def _read_facts(
    session: Session,
    merchant_id: int,
    accounts: dict[int, int],
    campaigns: list[Campaign],
    facts: dict[int, _Facts],
    last_until: datetime | None,
) -> None:
    """Per member, in one query: its latest profiling consent, the attributes the campaigns
    ask for, whether it is in each segment they name, and (`last_until`, one member) its last
    purchase here up to then."""
    described = any(c.kind == "birthday" or c.regions is not None for c in campaigns)
    named = sorted({c.segment for c in campaigns if c.segment is not None})
    single = len(accounts) == 1
    statement = _facts_statement(described, len(named), single)
    params: dict[str, Any] = {"merchant_id": merchant_id}
    params.update({f"segment_{n}": public_id for n, public_id in enumerate(named)})
    if single:
        [(member_id, account)] = accounts.items()
        # Without a win-back campaign, no purchase can be that late: none is read.
        params.update(member=member_id, account=account, until=last_until or BEGINNING)
        rows = statement.rows(session.connection(), params)
    else:
        rows = session.execute(statement.statement, {**params, "ids": sorted(accounts)}).all()
    for row in rows:
        found = facts[row.id]
        found.consent = bool(row.consent)
        if described:
            found.birth_date, found.region = row.birth_date, row.region
        found.segments = {p for n, p in enumerate(named) if getattr(row, f"segment_{n}")}
        last = getattr(row, "last_purchase", None) if last_until is not None else None
        if last is not None:
            found.bought = [last]


def purchase_moment() -> Any:
    """A purchase's moment: when it was made, or, without `occurred_at`, recorded."""
    return func.coalesce(transactions.c.occurred_at, transactions.c.created_at)


def _read_purchases(
    session: Session,
    merchant_id: int,
    accounts: dict[int, int],
    since: datetime,
    until: datetime,
    facts: dict[int, _Facts],
) -> None:
    """The members' purchases here from `since` to `until` (inclusive), and whether each
    bought here before `since`: what a win-back looks back on (refunded purchases count)."""
    member_of = {account: member for member, account in accounts.items()}
    moment = purchase_moment()
    mine = and_(
        transactions.c.merchant_id == merchant_id,
        transactions.c.type == "earn",
        transactions.c.member_account_id.in_(sorted(member_of)),
    )
    for account, at in session.execute(
        select(transactions.c.member_account_id, moment).where(
            mine, moment >= since, moment <= until
        )
    ):
        insort(facts[member_of[account]].bought, at)
    for (account,) in session.execute(
        select(transactions.c.member_account_id).where(mine, moment < since).distinct()
    ):
        facts[member_of[account]].bought_before = True


def exposed(
    campaigns: Sequence[Campaign], basket: Basket, audience: Audience
) -> list[tuple[str, bool]]:
    """The targeted campaigns that applied to the basket, or would have but for the member's
    control group: (name, held out)."""
    categories = {item.category for item in basket.items} if basket.items else {None}
    return [
        (c.name, c.name in audience.held_out)
        for c in campaigns
        if c.name in audience.targeted
        and (c.categories is None or bool(categories & set(c.categories)))
    ]


def record(
    session: Session,
    merchant_id: int,
    rows: Sequence[tuple[int, str, bool, datetime]],
    now: datetime,
) -> None:
    """The exposures (member id, campaign, held out, the purchase's moment), in one INSERT."""
    if rows:
        session.execute(
            insert(exposures),
            [
                {
                    "merchant_id": merchant_id,
                    "member_id": member_id,
                    "campaign": name,
                    "held_out": out,
                    "occurred_at": moment,
                    "created_at": now,
                }
                for member_id, name, out, moment in rows
            ],
        )


def own_segments(session: Session, merchant_id: int) -> list[tuple[str, str]]:
    """The merchant's segments (public id, name), by name: what its campaigns may target."""
    rows = session.execute(
        select(segments.c.public_id, segments.c.name)
        .where(segments.c.merchant_id == merchant_id, segments.c.deleted_at.is_(None))
        .order_by(segments.c.name, segments.c.id)
    ).all()
    return [(row.public_id, row.name) for row in rows]
