"""Tiers (SPEC 2): qualifying spend over the trailing 12 months less refunds, and the nightly
recalculation, which alone downgrades, travelling in time with the injected clock."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlalchemy import select, update

from coalition import economics
from coalition.jobs import run_daily_jobs
from coalition.ledger import operations
from coalition.ledger.models import Account
from coalition.members import tiers
from coalition.members.models import Member
from coalition.outbox import OutboxEvent
from tests import factories as f
from tests.factories import T0

pytestmark = pytest.mark.both_backends

ZONE = "Europe/Berlin"  # the test app's COALITION_TIMEZONE
EUR = 100  # minor units


def tier_of(session, member_id: int) -> str:
    return session.execute(select(Member.tier).where(Member.id == member_id)).scalar_one()


def changes(session) -> list[dict]:
    table = OutboxEvent.__table__
    return [
        {**row.data, "merchant_id": row.merchant_id, "member_id": row.member_id}
        for row in session.execute(
            select(table.c.data, table.c.merchant_id, table.c.member_id)
            .where(table.c.type == "member.tier_changed")
            .order_by(table.c.id)
        )
    ]


def nightly(session, day: date) -> tiers.Recalculated:
    """The recalculation after business day `day`, run shortly after its midnight."""
    after_midnight = datetime.combine(day + timedelta(days=1), time(3), UTC)
    return tiers.recalculate(session, day, after_midnight)


def account_of(session, member_id: int) -> int:
    return session.execute(select(Account.id).where(Account.member_id == member_id)).scalar_one()


def spend(session, member_id: int, at: datetime) -> int:
    account = account_of(session, member_id)
    return tiers.qualifying_spends(session, [account], tiers.window_at(at), "EUR")[account]


def test_the_window_is_twelve_months_of_days_ending_today_in_the_coalition_zone():
    # Berlin is UTC+1 in winter: midnight of 29 November 2025 there is 23:00 UTC the day before.
    assert tiers.window_start(date(2026, 11, 28), ZONE) == datetime(2025, 11, 28, 23, 0, tzinfo=UTC)
    # Summer time a year before: UTC+2.
    assert tiers.window_start(date(2026, 6, 1), ZONE) == datetime(2025, 6, 1, 22, 0, tzinfo=UTC)
    # 29 February has no date a year before: its window starts after 28 February.
    assert tiers.window_start(date(2028, 2, 29), ZONE) == datetime(2027, 2, 28, 23, 0, tzinfo=UTC)


def test_the_ladder_reads_the_economics_tiers_in_minor_units(session):
    ladder = tiers.ladder_at(session, T0)
    assert ladder.names == ("Member", "Silver", "Gold", "Platinum")
    assert ladder.thresholds == (0, 500 * EUR, 2000 * EUR, 5000 * EUR)
    assert ladder.tier_for(500 * EUR - 1) == "Member"
    assert ladder.tier_for(500 * EUR) == "Silver"
    assert ladder.tier_for(10**9) == "Platinum"
    assert ladder.next_above("Silver") == ("Gold", 2000 * EUR)
    assert ladder.next_above("Platinum") is None


def test_spend_is_the_coalition_wide_purchases_of_the_window_less_their_refunds(session):
    bakery, garage = f.merchant(session, "Bakery"), f.merchant(session, "Garage")
    alice, bob = f.member(session), f.member(session)
    f.purchase(session, alice, bakery, 1, amount_minor=300 * EUR)
    bought = f.purchase(session, alice, garage, 1, amount_minor=250 * EUR)
    f.purchase(session, bob, garage, 1, amount_minor=999 * EUR)
    assert spend(session, alice, T0) == 550 * EUR

    operations.refund(
        session,
        purchase_id=bought["transaction"]["id"],
        merchant_id=garage,
        amount_minor=100 * EUR,
        actor=f.TILL,
        now=T0 + timedelta(days=3),
    )
    assert spend(session, alice, T0 + timedelta(days=3)) == 450 * EUR
    assert spend(session, bob, T0 + timedelta(days=3)) == 999 * EUR


def test_a_refund_leaves_the_window_with_its_purchase(session):
    shop, alice = f.merchant(session), f.member(session)
    bought = f.purchase(session, alice, shop, 1, amount_minor=600 * EUR)
    operations.refund(
        session,
        purchase_id=bought["transaction"]["id"],
        merchant_id=shop,
        amount_minor=600 * EUR,
        actor=f.TILL,
        now=T0 + timedelta(days=40),
    )
    later = f.purchase(session, alice, shop, 1, amount_minor=100 * EUR, now=T0 + timedelta(days=60))
    assert later
    # A year after the purchase it and its refund are gone together: the later purchase stays.
    assert spend(session, alice, T0 + timedelta(days=366)) == 100 * EUR


def test_the_nightly_run_downgrades_when_spend_ages_out_and_not_before(session):
    shop, alice = f.merchant(session), f.member(session)
    f.purchase(session, alice, shop, 1, amount_minor=600 * EUR)  # 2 March 2026, 11:00 Berlin
    assert nightly(session, date(2026, 3, 2)).changed == 1
    assert tier_of(session, alice) == "Silver"

    # On 1 March 2027 the purchase is still within the 12 months: nothing changes.
    assert nightly(session, date(2027, 2, 28)).changed == 0
    assert tier_of(session, alice) == "Silver"
    # From 2 March 2027 on it is not: the run after 1 March downgrades.
    assert nightly(session, date(2027, 3, 1)).changed == 1
    assert tier_of(session, alice) == "Member"
    assert [(c["from"], c["to"], c["reason"]) for c in changes(session)] == [
        ("Member", "Silver", "recalculation"),
        ("Silver", "Member", "recalculation"),
    ]
    last = changes(session)[-1]
    assert last["merchant_id"] is None
    assert last["member_id"] == alice
    assert last["qualifying_spend"] == {"amount": 0, "currency": "EUR"}


def test_a_refund_lowers_the_tier_at_the_next_nightly_run(session):
    shop, alice = f.merchant(session), f.member(session)
    bought = f.purchase(session, alice, shop, 1, amount_minor=2100 * EUR)
    nightly(session, date(2026, 3, 2))
    assert tier_of(session, alice) == "Gold"
    operations.refund(
        session,
        purchase_id=bought["transaction"]["id"],
        merchant_id=shop,
        amount_minor=200 * EUR,
        actor=f.TILL,
        now=T0 + timedelta(days=1),
    )
    assert tier_of(session, alice) == "Gold"  # not before the nightly run
    nightly(session, date(2026, 3, 3))
    assert tier_of(session, alice) == "Silver"
    assert changes(session)[-1]["qualifying_spend"] == {"amount": 1900 * EUR, "currency": "EUR"}


def test_a_second_run_changes_nothing_and_writes_no_event(session):
    shop = f.merchant(session)
    members = [f.member(session) for _ in range(4)]
    for member, amount in zip(members, (0, 500, 2500, 7000), strict=True):
        if amount:
            f.purchase(session, member, shop, 1, amount_minor=amount * EUR)
    assert nightly(session, date(2026, 3, 2)).changed == 3
    assert nightly(session, date(2026, 3, 2)).changed == 0
    assert nightly(session, date(2026, 3, 3)).changed == 0
    assert [tier_of(session, m) for m in members] == ["Member", "Silver", "Gold", "Platinum"]
    assert len(changes(session)) == 3
    assert tiers.tier_counts(session) == [
        ("Member", 1),
        ("Silver", 1),
        ("Gold", 1),
        ("Platinum", 1),
    ]


def test_the_daily_jobs_run_the_recalculation_once_per_day(session):
    shop, alice = f.merchant(session), f.member(session)
    f.purchase(session, alice, shop, 1, amount_minor=700 * EUR)
    session.commit()  # the job's run starts from what is committed
    morning = T0 + timedelta(days=1)
    done = run_daily_jobs(now=morning.isoformat())
    assert done["recalculate-tiers"] == ["2026-03-02"]
    assert tier_of(session, alice) == "Silver"
    assert run_daily_jobs(now=(morning + timedelta(hours=1)).isoformat())["recalculate-tiers"] == []
    assert len(changes(session)) == 1


def test_new_thresholds_in_the_terms_take_effect_at_the_nightly_run_both_ways(session):
    shop = f.merchant(session)
    alice, bob = f.member(session), f.member(session)
    f.purchase(session, alice, shop, 1, amount_minor=600 * EUR)
    f.purchase(session, bob, shop, 1, amount_minor=300 * EUR)
    nightly(session, date(2026, 3, 2))
    assert [tier_of(session, m) for m in (alice, bob)] == ["Silver", "Member"]
    # From 10 March: a new Bronze at 100.00, Silver at 250.00, Gold at 550.00, no Platinum.
    ladder = [
        {"name": "Member", "qualifying_spend": "0", "multiplier": "1"},
        {"name": "Bronze", "qualifying_spend": "100", "multiplier": "1.1"},
        {"name": "Silver", "qualifying_spend": "250", "multiplier": "1.25"},
        {"name": "Gold", "qualifying_spend": "550", "multiplier": "1.5"},
    ]
    economics.set_version(
        session,
        effective_from=date(2026, 3, 10),
        settings=economics.DEFAULT_TERMS.to_json() | {"tiers": ladder},
        merchant_id=None,
        actor_id="test",
        now=T0,
    )

    assert nightly(session, date(2026, 3, 8)).changed == 0  # the old terms still
    assert nightly(session, date(2026, 3, 9)).changed == 2
    assert [tier_of(session, m) for m in (alice, bob)] == ["Gold", "Silver"]


def test_a_tier_the_terms_no_longer_name_is_set_right_at_night(session):
    shop, alice = f.merchant(session), f.member(session)
    f.purchase(session, alice, shop, 1, amount_minor=600 * EUR)
    session.execute(update(Member).where(Member.id == alice).values(tier="Diamond"))

    nightly(session, date(2026, 3, 2))

    assert tier_of(session, alice) == "Silver"
    assert changes(session)[-1]["from"] == "Diamond"
