"""The paid premium membership, the core's half (SPEC 2; issue 13, point 8): a year paid for
multiplies the member's points from its confirmation to its end and not outside it; one period
cannot be bought twice; a renewal bought in the reminder window starts where the year before
ends; the nightly job reminds once, N days ahead, and lapses the year when it ends. Time moves
with the injected clock; Stripe's part is in tests/settlement/test_premium.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from coalition import clock, economics
from coalition.database import table
from coalition.jobs import run_daily_jobs
from coalition.members import premium
from coalition.members.models import Membership
from coalition.outbox import OutboxEvent
from coalition.tasks import premium_memberships
from tests import factories as f

memberships = table(Membership)
events = table(OutboxEvent)
TERMS = economics.DEFAULT_PREMIUM  # 29.00 EUR a year, x1.5, reminder 30 days ahead
PAID_AT = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
ONE_YEAR_LATER = datetime(2027, 3, 2, 10, 0, tzinfo=UTC)


def _bought(session: Session, member_id: int, at: datetime = PAID_AT) -> premium.Attempt:
    """A year bought and confirmed by Stripe at `at`."""
    attempt = premium.begin(session, member_id, at, TERMS, "EUR")
    state = premium.confirm(
        session,
        attempt.public_id,
        amount_minor=TERMS.price_minor,
        currency="eur",
        checkout_session_id="cs_test_1",
        payment_intent_id=f"pi_{attempt.public_id}",
        now=at,
    )
    assert state == "active"
    return attempt


def _events(session: Session, member_id: int, kind: str) -> list[dict[str, Any]]:
    return list(
        session.scalars(
            select(events.c.data)
            .where(events.c.member_id == member_id, events.c.type == kind)
            .order_by(events.c.id)
        )
    )


def _row(session: Session, public_id: str) -> Any:
    return session.execute(select(memberships).where(memberships.c.public_id == public_id)).one()


@pytest.mark.both_backends
def test_the_multiplier_holds_from_confirmation_for_one_year_and_not_outside_it(
    session: Session,
) -> None:
    member_id = f.member(session)
    other = f.member(session)
    assert premium.premium_multiplier_at(session, member_id, PAID_AT) is None

    _bought(session, member_id)

    at = premium.premium_multiplier_at
    assert at(session, member_id, PAID_AT - timedelta(seconds=1)) is None
    assert at(session, member_id, PAID_AT) == Decimal("1.5")
    assert at(session, member_id, ONE_YEAR_LATER - timedelta(seconds=1)) == Decimal("1.5")
    assert at(session, member_id, ONE_YEAR_LATER) is None
    assert at(session, other, PAID_AT + timedelta(days=1)) is None  # only its own member
    during = PAID_AT + timedelta(days=1)
    assert premium.premium_multipliers_at(session, [member_id, other], during) == {
        member_id: Decimal("1.5")
    }
    assert premium.premium_multipliers_at(session, [member_id, other], ONE_YEAR_LATER) == {}
    [started] = _events(session, member_id, "membership.started")
    assert started["membership"]["ends_at"] == ONE_YEAR_LATER.isoformat()


@pytest.mark.both_backends
def test_a_pending_membership_gives_nothing_and_a_year_keeps_the_terms_it_was_sold_at(
    session: Session,
) -> None:
    member_id = f.member(session)
    dearer = economics.Premium(price_minor=3900, multiplier=Decimal("2"), reminder_days=30)
    attempt = premium.begin(session, member_id, PAID_AT, dearer, "EUR")
    assert premium.premium_multiplier_at(session, member_id, PAID_AT) is None

    assert _confirm(session, attempt.public_id, PAID_AT, amount=3900) == "active"

    later = PAID_AT + timedelta(days=100)
    assert premium.premium_multiplier_at(session, member_id, later) == Decimal("2")


@pytest.mark.both_backends
def test_one_period_cannot_be_bought_twice(session: Session) -> None:
    member_id = f.member(session)
    first = premium.begin(session, member_id, PAID_AT, TERMS, "EUR")
    # A second click while the first payment is open: the same attempt, not a second one.
    again = premium.begin(session, member_id, PAID_AT + timedelta(minutes=1), TERMS, "EUR")
    assert again.public_id == first.public_id

    _confirm(session, first.public_id, PAID_AT)

    with pytest.raises(premium.AlreadyPremium) as refused:
        premium.begin(session, member_id, PAID_AT + timedelta(days=10), TERMS, "EUR")
    assert refused.value.code == "already_premium" and refused.value.status == 409
    rows = session.execute(
        select(memberships.c.status).where(memberships.c.member_id == member_id)
    ).all()
    assert [row.status for row in rows] == ["active"]


def _confirm(session: Session, public_id: str, at: datetime, amount: int = 2900) -> str:
    return premium.confirm(
        session,
        public_id,
        amount_minor=amount,
        currency="EUR",
        checkout_session_id=None,
        payment_intent_id=f"pi_{public_id}",
        now=at,
    )


@pytest.mark.both_backends
def test_a_renewal_in_the_reminder_window_starts_where_the_year_before_ends(
    session: Session,
) -> None:
    member_id = f.member(session)
    _bought(session, member_id)
    too_early = ONE_YEAR_LATER - timedelta(days=31)
    with pytest.raises(premium.AlreadyPremium):
        premium.begin(session, member_id, too_early, TERMS, "EUR")

    in_window = ONE_YEAR_LATER - timedelta(days=20)
    renewal = premium.begin(session, member_id, in_window, TERMS, "EUR")
    assert renewal.period == 2
    assert _confirm(session, renewal.public_id, in_window) == "active"

    row = _row(session, renewal.public_id)
    assert (row.starts_at, row.ends_at) == (
        ONE_YEAR_LATER,
        datetime(2028, 3, 2, 10, 0, tzinfo=UTC),
    )
    assert premium.premium_multiplier_at(session, member_id, ONE_YEAR_LATER) == Decimal("1.5")
    # The next year is bought: a third purchase now is refused.
    with pytest.raises(premium.AlreadyPremium):
        premium.begin(session, member_id, in_window + timedelta(days=1), TERMS, "EUR")


@pytest.mark.both_backends
def test_a_payment_of_another_amount_or_a_replayed_confirmation_changes_nothing(
    session: Session,
) -> None:
    member_id = f.member(session)
    attempt = premium.begin(session, member_id, PAID_AT, TERMS, "EUR")
    assert _confirm(session, attempt.public_id, PAID_AT, amount=100) == "pending"
    assert premium.premium_multiplier_at(session, member_id, PAID_AT) is None

    assert _confirm(session, attempt.public_id, PAID_AT) == "active"
    assert _confirm(session, attempt.public_id, PAID_AT + timedelta(days=3)) == "active"
    assert _row(session, attempt.public_id).ends_at == ONE_YEAR_LATER
    assert len(_events(session, member_id, "membership.started")) == 1


@pytest.mark.both_backends
def test_an_expired_checkout_frees_the_period_and_a_refund_ends_the_year(
    session: Session,
) -> None:
    member_id = f.member(session)
    abandoned = premium.begin(session, member_id, PAID_AT, TERMS, "EUR")
    assert premium.cancel(session, abandoned.public_id, PAID_AT) == "cancelled"
    retried = premium.begin(session, member_id, PAID_AT + timedelta(hours=2), TERMS, "EUR")
    assert (retried.period, retried.public_id != abandoned.public_id) == (1, True)
    refund_at = PAID_AT + timedelta(days=5)
    _confirm(session, retried.public_id, PAID_AT + timedelta(hours=2))

    assert premium.refund(session, f"pi_{retried.public_id}", refund_at) == "refunded"

    assert premium.premium_multiplier_at(session, member_id, refund_at) is None
    assert premium.premium_multiplier_at(session, member_id, refund_at - timedelta(days=1)) == (
        Decimal("1.5")
    )
    assert len(_events(session, member_id, "membership.refunded")) == 1


@pytest.mark.both_backends
def test_the_nightly_job_reminds_once_ahead_then_lapses_the_year(session: Session) -> None:
    member_id = f.member(session)
    attempt = _bought(session, member_id)

    def night(moment: datetime) -> None:
        day = clock.business_date(moment, "Europe/Berlin") - timedelta(days=1)
        premium_memberships(day, moment)

    night(ONE_YEAR_LATER - timedelta(days=40))
    assert _events(session, member_id, "membership.renewal_due") == []

    night(ONE_YEAR_LATER - timedelta(days=29))
    night(ONE_YEAR_LATER - timedelta(days=28))
    night(ONE_YEAR_LATER - timedelta(days=2))
    [reminder] = _events(session, member_id, "membership.renewal_due")
    assert reminder["membership"]["id"] == attempt.public_id
    assert reminder["membership"]["ends_at"] == ONE_YEAR_LATER.isoformat()
    assert _row(session, attempt.public_id).status == "active"

    night(ONE_YEAR_LATER + timedelta(days=1, hours=1))
    night(ONE_YEAR_LATER + timedelta(days=2, hours=1))  # run twice: nothing more

    assert _row(session, attempt.public_id).status == "lapsed"
    assert len(_events(session, member_id, "membership.lapsed")) == 1
    assert premium.premium_multiplier_at(session, member_id, ONE_YEAR_LATER) is None
    # A lapsed member may buy again: a new year from the new payment.
    again = premium.begin(session, member_id, ONE_YEAR_LATER + timedelta(days=3), TERMS, "EUR")
    assert again.period == 2


@pytest.mark.both_backends
def test_no_reminder_for_a_year_already_renewed(session: Session) -> None:
    member_id = f.member(session)
    first = _bought(session, member_id)
    renewal = premium.begin(session, member_id, ONE_YEAR_LATER - timedelta(days=30), TERMS, "EUR")
    _confirm(session, renewal.public_id, ONE_YEAR_LATER - timedelta(days=30))

    premium_memberships(
        (ONE_YEAR_LATER - timedelta(days=11)).date(), ONE_YEAR_LATER - timedelta(days=10)
    )

    assert _events(session, member_id, "membership.renewal_due") == []
    assert _row(session, first.public_id).reminded_at is not None


def test_the_nightly_jobs_include_the_memberships(session: Session) -> None:
    member_id = f.member(session)
    attempt = _bought(session, member_id, PAID_AT - timedelta(days=400))
    now = PAID_AT + timedelta(hours=14)
    session.commit()

    done = run_daily_jobs(now=now.isoformat())

    assert done["premium-memberships"] == [(now - timedelta(days=1)).date().isoformat()]
    assert _row(session, attempt.public_id).status == "lapsed"


def test_one_year_after_keeps_the_day_or_ends_february_on_the_28th() -> None:
    assert premium.one_year_after(PAID_AT) == ONE_YEAR_LATER
    leap = datetime(2028, 2, 29, 12, 0, tzinfo=UTC)
    assert premium.one_year_after(leap) == datetime(2029, 2, 28, 12, 0, tzinfo=UTC)
