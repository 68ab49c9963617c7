"""The nightly fraud report (SPEC 3.10, issue 16 point 5): each kind of alert is raised on a small
crafted case and not on its near miss, with its evidence; a rerun writes nothing twice; the
operator dismisses (with a reason) or confirms an alert, once, audited; merchants see none of it."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from coalition import audit, tenancy
from coalition.fraud import report, velocity
from coalition.fraud.models import fraud_alerts
from coalition.jobs import run_daily_jobs
from coalition.members.models import Member
from coalition.members.services import create_member
from tests import factories as f

ZONE = "Europe/Berlin"
# Monday 2 March 2026, 10:00 UTC (11:00 in Berlin): business day 2026-03-02.
DAY = date(2026, 3, 2)
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
LATER = datetime(2026, 3, 3, 6, 0, tzinfo=UTC)


def _run(session: Session, day: date = DAY) -> dict[str, int]:
    written = report.run(session, day, ZONE, LATER)
    session.commit()
    return written


def _alerts(session: Session, kind: str | None = None) -> list[Any]:
    query = select(fraud_alerts).order_by(fraud_alerts.c.id)
    if kind:
        query = query.where(fraud_alerts.c.kind == kind)
    with tenancy.acting_as(tenancy.SYSTEM, session):
        return list(session.execute(query).all())


def _public(session: Session, member_id: int) -> str:
    return session.execute(select(Member.public_id).where(Member.id == member_id)).scalar_one()


def _merchant_public(session: Session, merchant_id: int) -> str:
    return session.execute(
        text("SELECT public_id FROM merchants WHERE id = :id"), {"id": merchant_id}
    ).scalar_one()


# Self-dealing ----------------------------------------------------------------------------------


def _self_dealt(session: Session, shop: int, members: int, after: timedelta) -> list[int]:
    """`members` members earn 100 at `shop`, which redeems 90 of them `after` later."""
    made = []
    for n in range(members):
        member = f.member(session)
        at = T0 + timedelta(minutes=n)
        f.purchase(session, member, shop, 100, now=at)
        f.redeem(session, member, shop, 90, now=at + after)
        made.append(member)
    return made


@pytest.mark.both_backends
def test_a_merchant_redeeming_points_its_till_just_issued_to_five_members_is_self_dealing(
    session: Session,
) -> None:
    kiosk = f.merchant(session, "Corner Kiosk")
    dealt = _self_dealt(session, kiosk, 5, timedelta(minutes=20))

    assert _run(session)["self_dealing"] == 1

    [alert] = _alerts(session, "self_dealing")
    assert alert.merchant_id == kiosk and alert.state == "open"
    evidence = alert.evidence
    assert evidence["merchant"] == {"id": _merchant_public(session, kiosk), "name": "Corner Kiosk"}
    assert evidence["redemptions"] == evidence["quick_redemptions"] == 5
    assert evidence["redeemed_points"] == evidence["quick_points"] == 450
    assert evidence["quick_share"] == "1.00"
    assert evidence["members_count"] == 5
    assert evidence["members"] == sorted(_public(session, m) for m in dealt)
    assert [t["type"] for t in evidence["transactions"]] == ["redeem"] * 5
    assert evidence["thresholds"] == {"window_hours": 2, "min_members": 5, "min_share_percent": 50}


@pytest.mark.both_backends
def test_four_members_or_redemptions_three_hours_after_the_earn_are_not_self_dealing(
    session: Session,
) -> None:
    _self_dealt(session, f.merchant(session, "Four"), 4, timedelta(minutes=20))
    _self_dealt(session, f.merchant(session, "Slow"), 5, timedelta(hours=3))

    _run(session)

    assert _alerts(session, "self_dealing") == []


# Enrolled and drained --------------------------------------------------------------------------


def _enrolled(session: Session, at: datetime) -> int:
    return create_member(session, now=at)[0]


@pytest.mark.both_backends
def test_a_member_enrolled_and_drained_within_hours_is_flagged_once(session: Session) -> None:
    shop, other = f.merchant(session, "Shop"), f.merchant(session, "Other")
    ring = _enrolled(session, T0)
    f.purchase(session, ring, shop, 300, now=T0 + timedelta(hours=1))
    f.redeem(session, ring, other, 280, now=T0 + timedelta(hours=3))

    assert _run(session)["enrol_drain"] == 1
    assert _run(session, DAY + timedelta(days=1)).get("enrol_drain") is None

    [alert] = _alerts(session, "enrol_drain")
    assert alert.member_id == ring and alert.merchant_id is None
    evidence = alert.evidence
    assert evidence["member"] == _public(session, ring)
    assert (evidence["received_points"], evidence["spent_points"]) == (300, 280)
    assert evidence["spent_share"] == "0.93" and evidence["hours_to_drain"] == "3.0"
    assert evidence["merchants"] == sorted(
        [_merchant_public(session, shop), _merchant_public(session, other)]
    )
    assert [(t["type"], t["points"]) for t in evidence["transactions"]] == [
        ("earn", 300),
        ("redeem", 280),
    ]


@pytest.mark.both_backends
def test_spending_less_than_nine_tenths_or_after_a_day_is_no_drain(session: Session) -> None:
    shop = f.merchant(session)
    thrifty, patient = _enrolled(session, T0), _enrolled(session, T0)
    f.purchase(session, thrifty, shop, 300, now=T0 + timedelta(hours=1))
    f.redeem(session, thrifty, shop, 260, now=T0 + timedelta(hours=3))
    f.purchase(session, patient, shop, 300, now=T0 + timedelta(hours=1))
    f.redeem(session, patient, shop, 300, now=T0 + timedelta(hours=25))

    _run(session)
    _run(session, DAY + timedelta(days=1))

    assert _alerts(session, "enrol_drain") == []


@pytest.mark.both_backends
def test_a_drain_across_midnight_is_found_by_the_next_days_report(session: Session) -> None:
    shop = f.merchant(session)
    late = datetime(2026, 3, 2, 22, 0, tzinfo=UTC)  # 23:00 in Berlin, Monday
    ring = _enrolled(session, late)
    f.purchase(session, ring, shop, 500, now=late + timedelta(minutes=10))
    f.redeem(session, ring, shop, 500, now=late + timedelta(hours=2))  # Tuesday in Berlin

    assert _run(session).get("enrol_drain") is None
    assert _run(session, DAY + timedelta(days=1))["enrol_drain"] == 1


# Redemptions far above issuance ----------------------------------------------------------------


def _redeemed_at(session: Session, shop: int, issued: int, redeemed: int) -> None:
    """`shop` issues `issued` points and redeems `redeemed` points its members earned
    elsewhere, in the days before DAY and on it."""
    source = f.merchant(session, "Source")
    members = [f.member(session) for _ in range(5)]
    earlier = T0 - timedelta(days=10)
    for member in members:
        f.purchase(session, member, source, redeemed // 5 + 10, now=earlier)
    f.purchase(session, members[0], shop, issued, now=earlier)
    for member in members:
        f.redeem(session, member, shop, redeemed // 5, now=T0)


@pytest.mark.both_backends
def test_a_merchant_redeeming_five_times_what_it_issued_is_flagged_once_a_window(
    session: Session,
) -> None:
    cinema = f.merchant(session, "Cinema")
    _redeemed_at(session, cinema, 1000, 5000)

    assert _run(session)["redemption_excess"] == 1
    f.redeem(session, _fresh(session), cinema, 5, now=T0 + timedelta(days=1))
    assert _run(session, DAY + timedelta(days=1)).get("redemption_excess") is None

    [alert] = _alerts(session, "redemption_excess")
    assert alert.merchant_id == cinema
    evidence = alert.evidence
    assert (evidence["issued_points"], evidence["redeemed_points"]) == (1000, 5000)
    assert evidence["ratio"] == "5.00" and evidence["redemptions"] == 5 and evidence["members"] == 5
    assert evidence["thresholds"] == {"window_days": 30, "ratio": 5, "min_redeemed_points": 5000}


def _fresh(session: Session) -> int:
    member = f.member(session)
    f.purchase(session, member, f.merchant(session, "Elsewhere"), 10, now=T0)
    return member


@pytest.mark.both_backends
def test_redeeming_just_under_five_times_the_issue_is_no_alert(session: Session) -> None:
    _redeemed_at(session, f.merchant(session, "Cinema"), 1001, 5000)

    _run(session)

    assert _alerts(session, "redemption_excess") == []


# Far outside a merchant's pattern --------------------------------------------------------------


def _history(session: Session, shop: int, count: int) -> int:
    member = f.member(session)
    for n in range(count):
        f.purchase(session, member, shop, 100, now=T0 - timedelta(days=40, hours=n))
    return member


@pytest.mark.both_backends
def test_an_earn_five_times_the_merchants_99th_percentile_is_unusual(session: Session) -> None:
    shop = f.merchant(session, "Bakery")
    member = _history(session, shop, 30)
    big = f.purchase(session, member, shop, 1000, now=T0)

    assert _run(session)["unusual_transaction"] == 1

    [alert] = _alerts(session, "unusual_transaction")
    assert alert.merchant_id == shop and alert.member_id == member
    evidence = alert.evidence
    assert evidence["transaction"]["id"] == big["transaction"]["id"]
    assert evidence["transaction"]["points"] == 1000
    assert (evidence["merchant_p99_points"], evidence["merchant_median_points"]) == (100, 100)
    assert evidence["history_transactions"] == 30 and evidence["times_p99"] == "10.00"


@pytest.mark.both_backends
def test_without_thirty_transactions_of_history_or_below_five_times_nothing_is_unusual(
    session: Session,
) -> None:
    young = f.merchant(session, "Young")
    f.purchase(session, _history(session, young, 29), young, 1000, now=T0)
    steady = f.merchant(session, "Steady")
    f.purchase(session, _history(session, steady, 30), steady, 499, now=T0)

    _run(session)

    assert _alerts(session, "unusual_transaction") == []


# Earn at one shop, spend at another -------------------------------------------------------------


def _pair(session: Session, earn: int, spend: int, members: int) -> list[int]:
    made = []
    for _ in range(members):
        member = f.member(session)
        f.purchase(session, member, earn, 200, now=T0 - timedelta(days=3))
        f.redeem(session, member, spend, 100, now=T0)
        made.append(member)
    return made


@pytest.mark.both_backends
def test_four_members_earning_only_at_one_shop_and_spending_only_at_another_are_a_cluster(
    session: Session,
) -> None:
    a, b, c = f.merchant(session, "A"), f.merchant(session, "B"), f.merchant(session, "C")
    cluster = _pair(session, a, b, 4)
    # The coalition's norm: other members earn and spend at a shop each, A and B among them.
    _pair(session, a, c, 1)
    _pair(session, c, b, 1)
    _pair(session, c, a, 2)

    assert _run(session)["earn_spend_cluster"] == 1

    [alert] = _alerts(session, "earn_spend_cluster")
    assert alert.merchant_id == b
    evidence = alert.evidence
    assert evidence["earn_merchant"]["name"] == "A" and evidence["spend_merchant"]["name"] == "B"
    assert evidence["members_count"] == 4 and evidence["single_shop_members"] == 8
    assert evidence["expected_members"] == "0.25"  # 1 x 1 / 4
    assert evidence["members"] == sorted(_public(session, m) for m in cluster)


@pytest.mark.both_backends
def test_three_members_or_a_pair_the_norm_predicts_are_no_cluster(session: Session) -> None:
    a, b = f.merchant(session, "A"), f.merchant(session, "B")
    _pair(session, a, b, 3)
    d, e = f.merchant(session, "D"), f.merchant(session, "E")
    # Four at D -> E, but the many others earning at D and spending at E predict them:
    # 4 x 19 others < 5 x (8 earning at D) x (8 spending at E).
    _pair(session, d, e, 4)
    for n in range(4):
        _pair(session, d, f.merchant(session, f"F{n}"), 2)
        _pair(session, f.merchant(session, f"G{n}"), e, 2)

    _run(session)

    assert _alerts(session, "earn_spend_cluster") == []


# Wrong codes and velocity limits ----------------------------------------------------------------


def _wrong(session: Session, shop: int, member: int, n: int, *, locked: bool = False) -> None:
    for i in range(n):
        velocity.record_wrong_code(
            session, member, shop, locked=locked and i == n - 1, now=T0 + timedelta(minutes=i)
        )


@pytest.mark.both_backends
def test_ten_wrong_codes_or_two_lockouts_at_a_shop_in_a_day_are_a_burst(session: Session) -> None:
    guessing, locking, fumbling = f.merchant(session), f.merchant(session), f.merchant(session)
    members = [f.member(session) for _ in range(3)]
    for member, n in zip(members, (4, 4, 2), strict=True):
        _wrong(session, guessing, member, n)
    _wrong(session, locking, members[0], 5, locked=True)
    _wrong(session, locking, members[1], 5, locked=True)
    _wrong(session, fumbling, members[2], 5, locked=True)  # one lockout, five codes: a near miss
    _wrong(session, fumbling, members[0], 4)

    assert _run(session)["wrong_codes"] == 2

    guessed, locked = _alerts(session, "wrong_codes")
    assert guessed.merchant_id == guessing
    assert (guessed.evidence["wrong_codes"], guessed.evidence["lockouts"]) == (10, 0)
    assert sorted((m["wrong_codes"], m["member"]) for m in guessed.evidence["members"]) == sorted(
        (n, _public(session, m)) for m, n in zip(members, (4, 4, 2), strict=True)
    )
    assert locked.merchant_id == locking
    assert (locked.evidence["wrong_codes"], locked.evidence["lockouts"]) == (10, 2)
    assert locked.evidence["members_count"] == 2


@pytest.mark.both_backends
def test_velocity_refusals_are_one_alert_per_member_or_merchant_and_day(session: Session) -> None:
    shop, member = f.merchant(session), f.member(session)
    for asked in (300, 200):
        velocity.record(
            session,
            velocity.Refused(
                "member_velocity",
                member,
                shop,
                {
                    "limit_points": 500,
                    "window_hours": 24,
                    "spent_points": 400,
                    "asked_points": asked,
                },
            ),
            T0,
        )

    assert _run(session)["velocity"] == 1

    [alert] = _alerts(session, "velocity")
    assert alert.member_id == member and alert.merchant_id is None
    assert alert.evidence["refusals"] == 2 and alert.evidence["asked_points"] == 500
    assert alert.evidence["limit"] == "member" and alert.evidence["limit_points"] == 500


# Reruns -----------------------------------------------------------------------------------------


@pytest.mark.both_backends
def test_a_rerun_of_the_day_writes_no_alert_twice(session: Session) -> None:
    _self_dealt(session, f.merchant(session, "Kiosk"), 5, timedelta(minutes=5))
    ring = _enrolled(session, T0)
    f.purchase(session, ring, f.merchant(session), 300, now=T0)
    f.redeem(session, ring, f.merchant(session), 300, now=T0 + timedelta(hours=1))
    first = _run(session)
    keys = [a.key for a in _alerts(session)]

    again = _run(session)

    assert first == {"self_dealing": 1, "enrol_drain": 1}
    assert again == {}
    assert [a.key for a in _alerts(session)] == keys


@pytest.mark.both_backends
def test_the_daily_job_reports_each_closed_day_once(session: Session) -> None:
    _self_dealt(session, f.merchant(session, "Kiosk"), 5, timedelta(minutes=5))
    session.commit()

    done = run_daily_jobs(now=LATER.isoformat())
    again = run_daily_jobs(now=(LATER + timedelta(hours=1)).isoformat())

    assert done["fraud-report"] == ["2026-03-02"] and again["fraud-report"] == []
    [alert] = _alerts(session)
    assert (alert.kind, alert.business_date) == ("self_dealing", DAY)


# Decisions --------------------------------------------------------------------------------------


@pytest.fixture
def alert(session: Session) -> str:
    _self_dealt(session, f.merchant(session, "Kiosk"), 5, timedelta(minutes=5))
    _run(session)
    [row] = _alerts(session)
    return str(row.public_id)


ALERTS = "/api/v1/ops/fraud-alerts"


def test_the_operator_dismisses_an_alert_with_a_reason_once_and_it_is_audited(
    client, session: Session, alert: str
) -> None:
    ops = f.operator_headers(session)

    dismissed = client.post(
        f"{ALERTS}/{alert}/dismiss", json={"reason": "A staff event"}, headers=ops
    )
    again = client.post(f"{ALERTS}/{alert}/dismiss", json={"reason": "Twice"}, headers=ops)
    confirmed = client.post(f"{ALERTS}/{alert}/confirm", headers=ops)

    assert dismissed.status_code == 200, dismissed.get_json()
    body = dismissed.get_json()
    assert (body["id"], body["state"], body["reason"]) == (alert, "dismissed", "A staff event")
    assert body["decided_by"].startswith("cli_") and body["kind"] == "self_dealing"
    for refused in (again, confirmed):
        assert refused.status_code == 409
        assert refused.get_json()["code"] == "alert_decided"
        assert refused.get_json()["state"] == "dismissed"
    [event] = audit.events(session, target=f"fraud_alert:{alert}").rows
    assert event["action"] == "fraud_alert.dismiss"
    assert event["before"] == {"state": "open"}
    assert event["after"] == {"state": "dismissed", "reason": "A staff event"}


def test_confirming_is_audited_and_a_repeat_under_its_key_is_replayed(
    client, session: Session, alert: str
) -> None:
    ops = {**f.operator_headers(session), "Idempotency-Key": "confirm-1"}

    first = client.post(f"{ALERTS}/{alert}/confirm", headers=ops)
    repeat = client.post(f"{ALERTS}/{alert}/confirm", headers=ops)

    assert first.status_code == repeat.status_code == 200
    assert repeat.headers["Idempotent-Replayed"] == "true"
    assert first.get_json()["state"] == "confirmed"
    assert [e["action"] for e in audit.events(session).rows] == ["fraud_alert.confirm"]


@pytest.mark.parametrize(
    "body",
    [{}, {"reason": ""}, {"reason": "   "}, {"reason": 7}, {"reason": "x" * 2001}, {"why": "x"}],
)
def test_a_dismissal_without_a_fit_reason_is_refused_and_changes_nothing(
    client, session: Session, alert: str, body: dict[str, Any]
) -> None:
    answer = client.post(
        f"{ALERTS}/{alert}/dismiss", json=body, headers=f.operator_headers(session)
    )

    assert answer.status_code in (400, 422)
    assert answer.headers["Content-Type"].startswith("application/problem+json")
    assert [a.state for a in _alerts(session)] == ["open"]
    assert audit.events(session).rows == []


def test_an_unknown_alert_is_not_found(client, session: Session) -> None:
    ops = f.operator_headers(session)
    answer = client.post(f"{ALERTS}/fra_nothing/confirm", headers=ops)
    assert answer.status_code == 404


def test_the_list_filters_by_state_kind_and_merchant_and_pages(client, session: Session) -> None:
    kiosk, other = f.merchant(session, "Kiosk"), f.merchant(session, "Other")
    _self_dealt(session, kiosk, 5, timedelta(minutes=5))
    _self_dealt(session, other, 5, timedelta(minutes=5))
    _run(session)
    ops = f.operator_headers(session)
    kiosk_id = _merchant_public(session, kiosk)

    first = client.get(f"{ALERTS}?limit=1", headers=ops).get_json()
    second = client.get(f"{ALERTS}?limit=1&cursor={first['next_cursor']}", headers=ops).get_json()
    mine = client.get(f"{ALERTS}?merchant={kiosk_id}&kind=self_dealing", headers=ops).get_json()
    client.post(f"{ALERTS}/{mine['data'][0]['id']}/confirm", headers=ops)
    confirmed = client.get(f"{ALERTS}?state=confirmed", headers=ops).get_json()
    bad = client.get(f"{ALERTS}?state=maybe", headers=ops)

    assert len(first["data"]) == len(second["data"]) == 1 and second["next_cursor"] is None
    assert first["data"][0]["id"] != second["data"][0]["id"]
    assert [a["merchant"] for a in mine["data"]] == [kiosk_id]
    assert [a["id"] for a in confirmed["data"]] == [mine["data"][0]["id"]]
    assert bad.status_code == 422


# Tenancy ----------------------------------------------------------------------------------------


def test_a_merchant_token_reaches_no_fraud_alert_route(
    client, session: Session, alert: str
) -> None:
    kiosk = _alerts(session)[0].merchant_id
    till = f.merchant_headers(session, kiosk)

    listed = client.get(ALERTS, headers=till)
    dismissed = client.post(f"{ALERTS}/{alert}/dismiss", json={"reason": "mine"}, headers=till)
    confirmed = client.post(f"{ALERTS}/{alert}/confirm", headers=till)

    assert {listed.status_code, dismissed.status_code, confirmed.status_code} <= {403, 404}
    assert [a.state for a in _alerts(session)] == ["open"]


def test_a_merchants_database_session_sees_no_alert(session: Session, alert: str) -> None:
    kiosk = _alerts(session)[0].merchant_id
    with tenancy.acting_as(tenancy.Tenant.merchant(kiosk), session):
        seen = session.execute(select(func.count()).select_from(fraud_alerts)).scalar_one()
    assert seen == 0
