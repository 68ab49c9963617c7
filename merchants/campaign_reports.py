"""A targeted campaign's report (issue 16): its targeted group against its control group over
the campaign's window, and the uplift (decision 314).

- The campaign is the one of that name in the rules in force now, or else in the newest version
  that has one. Only a targeted campaign has a report (an untargeted one has no control group).
- Its window: from `starts_at` to `ends_at` (exclusive), whatever has happened in it so far
  (`as_of`: when the report was made).
- Its groups. A `standard` campaign (it targets a segment and/or regions): the members it
  targets now, that is the segment's members as last evaluated (and/or the members whose region
  is one of its regions) whose latest profiling consent is granted, split by the control hash
  (`merchants.targeting.held_out`) at its `control_percent`. A `birthday` or `win_back`
  campaign, whose target is a moment rather than a set: the members it reached, or held out, at
  a purchase in the window (`campaign_exposures`); a member ever reached counts as targeted.
- For each group: its members, how many bought here in the window (buyers), their purchases,
  sales (the purchases' amounts, refunds not deducted) and points (every part), the average
  basket (sales / purchases, to the minor unit, half to even).
- The uplift: the targeted group's sales per member less the control group's (to the minor
  unit), and its share of buyers less the control's (in percentage points, to 0.01); none while
  either group is empty.

Read as the system (a member's attributes and consents are hidden from its merchant by
row-level security), restricted to the merchant by hand: only counts and sums leave."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from sqlalchemy import Integer, and_, cast, func, select
from sqlalchemy.orm import Session

from coalition import economics, tenancy
from coalition.database import table
from coalition.errors import NotFound
from coalition.ledger.models import Account
from merchants import rules as earn_rules
from merchants import targeting
from merchants.earning import Campaign, Rules
from merchants.targeting import attributes, consents, exposures, segment_members, segments
from merchants.targeting import transactions as txns

accounts = table(Account)
HUNDRED = Decimal(100)


@dataclass(frozen=True)
class Group:
    members: int
    buyers: int
    purchases: int
    sales: Decimal  # in currency units
    points: int
    average_basket: Decimal | None  # None without purchases


@dataclass(frozen=True)
class Uplift:
    sales_per_member: Decimal
    buyer_rate_points: Decimal  # percentage points


@dataclass(frozen=True)
class Report:
    campaign: Campaign
    document: Mapping[str, Any]  # the campaign as its rules document keeps it
    basis: str  # "targeted_now" or "exposures"
    window_start: datetime
    window_end: datetime
    as_of: datetime
    currency: str
    targeted: Group
    control: Group
    uplift: Uplift | None


def campaign_named(
    session: Session, merchant_id: int, name: str, now: datetime
) -> tuple[Campaign, Mapping[str, Any]]:
    """The targeted campaign `name` and its document: in the rules in force now, or the newest
    version that has it. `not_found` otherwise."""
    versions = [earn_rules.in_force_at(session, merchant_id, now)]
    versions += earn_rules.history(session, merchant_id)
    for version in versions:
        rules: Rules = version.rules
        for campaign, document in zip(rules.campaigns, version.document["campaigns"], strict=True):
            if campaign.name == name and campaign.targeted:
                return campaign, document
    raise NotFound("no targeted campaign of that name")


def report(session: Session, merchant_id: int, name: str, now: datetime) -> Report:
    campaign, document = campaign_named(session, merchant_id, name, now)
    terms = economics.terms_at(now, merchant_id, session)
    start, end = campaign.starts_at, campaign.ends_at
    with tenancy.acting_as(tenancy.SYSTEM, session):
        if campaign.kind == "standard":
            basis = "targeted_now"
            population = _targeted_now(session, merchant_id, campaign)
            held = {
                m: targeting.held_out(merchant_id, campaign.name, m, campaign.control_percent)
                for m in population
            }
        else:
            basis = "exposures"
            held = _exposed(session, merchant_id, campaign.name, start, end)
        bought = _purchases(session, merchant_id, start, end)
    targeted = _group((m for m, out in held.items() if not out), bought, terms.minor_units)
    control = _group((m for m, out in held.items() if out), bought, terms.minor_units)
    uplift = _uplift(targeted, control, terms.minor_units)
    return Report(
        campaign, document, basis, start, end, now, terms.currency, targeted, control, uplift
    )


def _consented() -> Any:
    """The members whose latest profiling consent is granted."""
    latest = (
        select(func.max(consents.c.id))
        .where(consents.c.purpose == targeting.PURPOSE)
        .group_by(consents.c.member_id)
    )
    return select(consents.c.member_id).where(
        consents.c.id.in_(latest), consents.c.granted.is_(True)
    )


def _targeted_now(session: Session, merchant_id: int, campaign: Campaign) -> list[int]:
    if campaign.segment is not None:
        query = (
            select(segment_members.c.member_id)
            .join(segments, segments.c.id == segment_members.c.segment_id)
            .where(
                segments.c.merchant_id == merchant_id,
                segments.c.public_id == campaign.segment,
                segments.c.deleted_at.is_(None),
            )
        )
        if campaign.regions is not None:
            query = query.join(
                attributes,
                and_(
                    attributes.c.member_id == segment_members.c.member_id,
                    attributes.c.region.in_(sorted(campaign.regions)),
                ),
            )
        query = query.where(segment_members.c.member_id.in_(_consented()))
    else:
        query = select(attributes.c.member_id).where(
            attributes.c.region.in_(sorted(campaign.regions or ())),
            attributes.c.member_id.in_(_consented()),
        )
    return list(session.execute(query).scalars())


def _exposed(
    session: Session, merchant_id: int, name: str, start: datetime, end: datetime
) -> dict[int, bool]:
    """The members the campaign reached (False) or held out (True) in the window; a member
    ever reached counts as reached."""
    rows = session.execute(
        select(exposures.c.member_id, func.min(cast(exposures.c.held_out, Integer)))
        .where(
            exposures.c.merchant_id == merchant_id,
            exposures.c.campaign == name,
            exposures.c.occurred_at >= start,
            exposures.c.occurred_at < end,
        )
        .group_by(exposures.c.member_id)
    ).all()
    return {member_id: bool(out) for member_id, out in rows}


@dataclass(frozen=True)
class _Bought:
    purchases: int
    sales: int  # minor units
    points: int


def _purchases(
    session: Session, merchant_id: int, start: datetime, end: datetime
) -> dict[int, _Bought]:
    """Each member's purchases here in the window: count, amounts, points."""
    moment = targeting.purchase_moment()
    rows = session.execute(
        select(
            accounts.c.member_id,
            func.count(),
            func.coalesce(func.sum(txns.c.amount_minor), 0),
            func.coalesce(func.sum(txns.c.points), 0),
        )
        .join(accounts, accounts.c.id == txns.c.member_account_id)
        .where(
            txns.c.merchant_id == merchant_id,
            txns.c.type == "earn",
            moment >= start,
            moment < end,
        )
        .group_by(accounts.c.member_id)
    ).all()
    return {row[0]: _Bought(int(row[1]), int(row[2]), int(row[3])) for row in rows}


def _group(members: Iterable[int], bought: dict[int, _Bought], minor_units: int) -> Group:
    ids = list(members)
    found = [bought[m] for m in ids if m in bought]
    purchases = sum(b.purchases for b in found)
    sales = _money(Decimal(sum(b.sales for b in found)) / minor_units, minor_units)
    average = _money(sales / purchases, minor_units) if purchases else None
    return Group(len(ids), len(found), purchases, sales, sum(b.points for b in found), average)


def _money(value: Decimal, minor_units: int) -> Decimal:
    exponent = Decimal(1).scaleb(-(len(str(minor_units)) - 1))
    return value.quantize(exponent, rounding=ROUND_HALF_EVEN)


def _uplift(targeted: Group, control: Group, minor_units: int) -> Uplift | None:
    if not targeted.members or not control.members:
        return None
    per_member = targeted.sales / targeted.members - control.sales / control.members
    rate = (
        Decimal(targeted.buyers) / targeted.members - Decimal(control.buyers) / control.members
    ) * HUNDRED
    return Uplift(
        _money(per_member, minor_units), rate.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
    )
