"""`coalition demo`: a newcomer's first run shows a coalition that has been trading for weeks,
with credentials to try the API, and running it again changes nothing."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from coalition import clock, tenancy
from coalition.database import table
from coalition.demo import fill, settle_history
from coalition.ledger.models import Account, Transaction
from coalition.members import reads
from coalition.members.models import Member
from coalition.members.services import find_member
from coalition.oauth.tokens import authenticate, issue_token
from coalition.privacy.models import Consent
from merchants.models import Merchant
from settlement.models import PaymentInstruction


@pytest.mark.both_backends
def test_the_demo_trades_for_weeks_and_leaves_a_sound_ledger(session: Session) -> None:
    made = fill(session, members=30, days=10, seed=1, now=clock.utcnow())

    totals = made["totals"]
    # Eight partners and the self-dealing kiosk; thirty members and the ring's five (issue 16).
    assert totals["merchants"] == 9 and totals["members"] == 35
    assert totals["purchases"] > 0 and totals["redemptions"] > 0
    transactions = table(Transaction)
    by_type = dict(
        session.execute(
            # A till's doings; a prize draw's entries are redemptions at the operator.
            select(transactions.c.type, func.count())
            .where(transactions.c.purpose.is_(None))
            .group_by(transactions.c.type)
        ).all()
    )
    assert by_type["earn"] == totals["purchases"]
    assert by_type["redeem"] == totals["redemptions"]
    # The session fixture checks every ledger invariant after the test.


def test_the_demo_credentials_work_on_the_api(app: Flask, session: Session) -> None:
    made = fill(session, members=5, days=1, seed=2, now=clock.utcnow())
    till = made["credentials"]["merchant_client"]["client_id"]
    token = issue_token(session, client_id=till, scope="transactions:read", now=clock.utcnow())

    response = app.test_client().get(
        "/api/v1/transactions", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200
    assert authenticate(session, token, clock.utcnow()) is not None


def test_the_demo_command_leaves_a_database_with_merchants_alone(
    runner: FlaskCliRunner, session: Session
) -> None:
    fill(session, members=3, days=1, seed=3, now=clock.utcnow())
    before = session.execute(select(func.count()).select_from(table(Merchant))).scalar()

    result = runner.invoke(args=["demo"])

    assert result.exit_code == 0, result.output
    assert "left as it is" in result.output
    assert session.execute(select(func.count()).select_from(table(Merchant))).scalar() == before


def test_the_demo_command_prints_credentials_it_keeps_privately(
    runner: FlaskCliRunner, session: Session, tmp_path: Path
) -> None:
    kept = tmp_path / "credentials.json"
    result = runner.invoke(
        args=["demo", "--members", "4", "--days", "1", "--credentials", str(kept), "--json"]
    )

    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)  # one JSON object, nothing else
    assert printed["made"] is True and printed["kept"] == str(kept)
    assert printed["totals"]["merchants"] == 8 and printed["totals"]["members"] == 4
    credentials = printed["credentials"]
    assert credentials["operator_client"]["client_secret"].startswith("cs_")
    assert credentials["member_sign_in"]["email"] == "anna@demo.example"
    assert json.loads(kept.read_text()) == credentials
    assert kept.stat().st_mode & 0o777 == 0o600


def test_the_demo_command_shows_its_progress_and_ends_with_a_summary_a_person_reads(
    runner: FlaskCliRunner, session: Session, tmp_path: Path
) -> None:
    kept = tmp_path / "credentials.json"
    result = runner.invoke(
        args=["demo", "--members", "4", "--days", "3", "--credentials", str(kept)]
    )

    assert result.exit_code == 0, result.output
    credentials = json.loads(kept.read_text())
    # The long work shows a progress bar (on stderr, a label alone when it is not a terminal).
    assert "Trading" in result.stderr and "Settling" in result.stderr
    summary = result.stdout
    assert "{" not in summary  # no JSON for a person to read
    assert "8 merchants, 4 members" in summary
    for secret in (
        credentials["operator_client"]["client_id"],
        credentials["operator_client"]["client_secret"],
        credentials["merchant_client"]["client_secret"],
        credentials["member_sign_in"]["password"],
    ):
        assert secret in summary
    assert str(kept) in summary


def test_the_demo_command_on_a_database_with_merchants_says_so_as_json_too(
    runner: FlaskCliRunner, session: Session
) -> None:
    fill(session, members=3, days=1, seed=5, now=clock.utcnow())

    result = runner.invoke(args=["demo", "--json"])

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["made"] is False


@pytest.mark.both_backends
def test_the_demo_ends_with_its_days_settled_and_a_month_stated(session: Session) -> None:
    from settlement import runs, statements

    now = datetime(2026, 11, 22, 12, tzinfo=UTC)
    made = fill(session, members=20, days=40, seed=4, now=now)

    settled = settle_history(session, made["since"], now)

    assert runs.unsettled_days(session, date(2026, 10, 1), date(2026, 11, 21)) == []
    october = statements.month_statements(session, "2026-10")
    assert settled["statements"] == len(october) > 0
    # Each statement's lines and rounding add up to its net; the nets to the operator's month.
    for statement in october:
        lines = sum(Decimal(line["amount"]) for line in statement.lines)
        assert lines == Decimal(statement.exact_net)
        assert Decimal(statement.exact_net) + Decimal(statement.rounding) == Decimal(statement.net)
    # Netting: each merchant's one payment instruction settles its closing to the cent, so
    # once paid every position is zero (a transfer when the operator pays, an invoice if not).
    payments = {
        row.statement_id: -row.amount_minor if row.kind == "transfer" else row.amount_minor
        for row in session.execute(select(PaymentInstruction)).scalars()
    }
    assert {s.id: Decimal(s.closing) * 100 for s in october if Decimal(s.closing)} == {
        k: Decimal(v) for k, v in payments.items()
    }


def test_the_demo_has_one_resolved_dispute_whose_credit_note_waits_for_the_next_statement(
    session: Session,
) -> None:
    from settlement import disputes, statements

    now = datetime(2026, 11, 22, 12, tzinfo=UTC)
    made = fill(session, members=20, days=40, seed=4, now=now)

    settled = settle_history(session, made["since"], now)

    assert settled["disputes"] == 1
    [resolved] = session.execute(disputes.all_disputes()).all()
    shown = disputes.render(resolved)
    assert shown["status"] == "resolved" and shown["statement"]["month"] == "2026-10"
    assert shown["line"]["kind"] == "reimbursements"
    assert shown["resolution"]["note"] == {
        "kind": "credit_note",
        "amount": {"amount": 40, "currency": "EUR"},  # 40 points x 0.01
        "stated_in": None,  # November's statement, made on 1 December, states it
    }
    disputed = statements.statement_view(session, shown["statement"]["id"])
    assert "credit_note" not in [line["kind"] for line in disputed["lines"]]


def test_the_printed_member_has_earned_at_several_shops_and_spent_at_another(
    session: Session,
) -> None:
    made = fill(session, members=5, days=10, seed=6, now=clock.utcnow())
    email = made["credentials"]["member_sign_in"]["email"]
    member = session.execute(
        select(table(Member).c.id).where(table(Member).c.email == email)
    ).scalar_one()
    transactions, accounts = table(Transaction), table(Account)
    account = select(accounts.c.id).where(accounts.c.member_id == member).scalar_subquery()
    shops = session.execute(
        select(transactions.c.type, transactions.c.merchant_id).where(
            transactions.c.member_account_id == account,
            transactions.c.type.in_(("earn", "redeem")),
        )
    ).all()
    earned_at = {shop for kind, shop in shops if kind == "earn"}
    spent_at = {shop for kind, shop in shops if kind == "redeem"}
    assert len(earned_at) >= 3
    assert spent_at - earned_at  # spent at a shop where she earned nothing


def test_the_demo_prints_where_to_sign_in_to_each_face(
    runner: FlaskCliRunner, session: Session, tmp_path: Path
) -> None:
    kept = tmp_path / "credentials.json"
    result = runner.invoke(
        args=["demo", "--members", "3", "--days", "1", "--credentials", str(kept)]
    )

    assert result.exit_code == 0, result.output
    credentials = json.loads(kept.read_text())
    faces = (("member_sign_in", "/me"), ("merchant_sign_in", "/portal"), ("staff_sign_in", "/ops"))
    for key, url in faces:
        sign_in = credentials[key]
        assert sign_in["url"] == url
        line = next(line for line in result.stdout.splitlines() if sign_in["email"] in line)
        assert url in line and sign_in["password"] in line


def test_the_demo_shows_the_programme_at_work(session: Session) -> None:
    """Issue 13: members in every tier, a few premium members, points pending and expiring soon,
    and purchases that earned campaign and stamp points; Anna's own story shows the last two."""
    made = fill(session, members=40, days=60, seed=4, now=clock.utcnow())

    members = table(Member)
    tiers = set(session.execute(select(members.c.tier)).scalars())
    assert tiers == {"Member", "Silver", "Gold", "Platinum"}
    assert made["totals"]["premium_members"] == 3
    consented = session.execute(select(func.count()).select_from(table(Consent))).scalar()
    assert consented > 0  # each shop has an audience to write to
    breakdowns = session.execute(
        select(table(Transaction).c.breakdown).where(table(Transaction).c.type == "earn")
    ).scalars()
    earned = [b for b in breakdowns if b]
    assert any(b["campaign"] > 0 for b in earned) and any(b["stamp"] > 0 for b in earned)
    assert any(b["tier"] > 0 for b in earned) and any(b["premium"] > 0 for b in earned)
    anna = session.execute(
        select(members.c.public_id).where(members.c.email == "anna@demo.example")
    ).scalar_one()
    overview = reads.overview(session, find_member(session, anna), clock.utcnow(), "UTC")
    assert overview["pending"] > 0
    soon = clock.utcnow() + timedelta(days=30)
    assert any(line["expires_at"] <= soon for line in overview["expiring"]), overview["expiring"]


def test_the_demo_has_a_closed_draw_with_its_winners_and_an_open_one(session: Session, client):
    """Issue 15, point 6: one draw ran through the demo's weeks and closed, its seed revealed
    and its winners drawn; another is open, its seed still hidden; members bought entries."""
    from draws.models import draws as draw_rows

    made = fill(session, members=30, days=20, seed=7, now=clock.utcnow())

    assert made["totals"]["draws"] == 2 and made["totals"]["draw_entries"] > 0
    public = dict(session.execute(select(draw_rows.c.status, draw_rows.c.public_id)).all())
    closed = client.get(f"/api/v1/draws/{public['closed']}").get_json()
    assert len(closed["winners"]) == closed["winners_count"] == 3
    assert closed["seed"] and closed["entries_count"] >= len(closed["entries"]) > 3
    opened = client.get(f"/api/v1/draws/{public['open']}").get_json()
    assert "seed" not in opened and opened["entries_count"] > 0
    page = client.get(f"/draws/{public['closed']}")
    assert page.status_code == 200 and closed["seed"] in page.get_data(as_text=True)
    # Every entry bought with points is a redemption at the operator, not at a shop.
    with tenancy.acting_as(tenancy.SYSTEM, session):
        entries = session.execute(
            select(table(Transaction).c.merchant_id).where(
                table(Transaction).c.purpose == "draw_entry"
            )
        ).scalars()
        assert set(entries) == {None}


def test_the_demo_lists_a_catalogue_of_several_suppliers_with_orders_in_every_state(
    session: Session, client
):
    """Issue 15, point 6: the operator's rewards and four partners'; orders waiting, fulfilled
    (a voucher accepted at its till among them), cancelled by their members and cancelled by
    the night for want of fulfilment."""
    from rewards.models import orders, rewards

    made = fill(session, members=30, days=20, seed=1, now=clock.utcnow())

    with tenancy.acting_as(tenancy.SYSTEM, session):
        suppliers = set(session.execute(select(rewards.c.merchant_id)).scalars())
        states = set(
            session.execute(select(orders.c.status, orders.c.cancelled_by).distinct()).all()
        )
        accepted = session.execute(
            select(func.count()).where(orders.c.voucher_accepted_at.is_not(None))
        ).scalar()
    assert made["totals"]["rewards"] == 5 and None in suppliers and len(suppliers) == 5
    assert states == {
        ("pending", None),
        ("fulfilled", None),
        ("cancelled", "member"),
        ("cancelled", "expiry"),
    }
    assert accepted > 0


def _fraud_truth_and_alerts(session: Session) -> tuple[int, dict[int, str], list[Any]]:
    """The seeded fraud (the self-dealing kiosk; the ring's members by id and public id) and
    every alert the report raised."""
    from coalition.demo_fraud import KIOSK, RING_EMAIL
    from coalition.fraud.models import fraud_alerts

    with tenancy.acting_as(tenancy.SYSTEM, session):
        kiosk = session.execute(
            select(table(Merchant).c.id).where(table(Merchant).c.name == KIOSK)
        ).scalar_one()
        ring = dict(
            session.execute(
                select(table(Member).c.id, table(Member).c.public_id).where(
                    table(Member).c.email.like(RING_EMAIL.format(n="%"))
                )
            ).all()
        )
        alerts = list(session.execute(select(fraud_alerts)).all())
    return kiosk, ring, alerts


def _involves(alert: Any, kiosk: int, ring: dict[int, str]) -> bool:
    """Whether an alert is about the seeded fraud: the kiosk, or a member of the ring."""
    evidence = alert.evidence
    named = {m["member"] if isinstance(m, dict) else m for m in evidence.get("members", [])}
    named.add(evidence.get("member"))
    return alert.merchant_id == kiosk or alert.member_id in ring or bool(named & set(ring.values()))


def test_the_fraud_report_finds_the_seeded_fraud_and_nothing_of_the_honest_traffic(
    session: Session, record_property: Any
) -> None:
    """Issue 16: the demo seeds one self-dealing partner and one enrol-and-drain ring; the
    nightly report, run for every day of the demo, flags both (recall) and nothing else
    (precision). A rerun of every day writes no alert twice."""
    from coalition.fraud import report

    now = datetime(2026, 11, 22, 12, tzinfo=UTC)
    made = fill(session, members=60, days=30, seed=11, now=now)
    kiosk, ring, alerts = _fraud_truth_and_alerts(session)
    again = [
        report.run(session, made["since"] + timedelta(days=n), "Europe/Berlin", now)
        for n in range(30)
    ]

    assert len(ring) == 5 and made["totals"]["fraud_alerts"] == len(alerts)
    assert all(written == {} for written in again)
    true_alerts = [a for a in alerts if _involves(a, kiosk, ring)]
    found = {a.merchant_id for a in alerts if a.kind == "self_dealing"} & {kiosk}
    drained = {a.member_id for a in alerts if a.kind == "enrol_drain"} & set(ring)
    truths = 1 + len(ring)
    recall = (len(found) + len(drained)) / truths
    precision = len(true_alerts) / len(alerts)
    kinds = sorted({a.kind for a in alerts})
    record_property(
        "summary",
        f"F2 fraud report on the demo (60 members, 30 days, seed 11): {len(alerts)} alerts"
        f" ({', '.join(kinds)}), precision {precision:.2f}, recall {recall:.2f}"
        f" ({len(found) + len(drained)} of {truths} seeded: 1 self-dealing merchant,"
        f" {len(ring)} ring members)",
    )
    assert recall == 1.0
    assert precision == 1.0, [(a.kind, a.evidence) for a in alerts if a not in true_alerts]


def test_the_demo_has_partners_that_win_members_and_a_lapsed_cohort(session: Session) -> None:
    """Issue 16, point 7: one member a day joins at the grocer's till (for the first 25 of 35
    days), and makes a first purchase two days later at the bookshop (even days: 13 members) or
    the cinema (odd days: 12), every other one coming back a week later; twelve members who
    joined online on the first day shop every third day for three weeks (7 purchases each) and
    never again. Insights show the winners, and the lapsed cohort is in the ledger."""
    from insights import reads as insights

    now = datetime(2026, 11, 22, 12, tzinfo=UTC)
    made = fill(session, members=20, days=35, seed=8, now=now)
    names = dict(session.execute(select(table(Merchant).c.name, table(Merchant).c.id)).all())
    span = insights.window(made["since"], date(2026, 11, 21), date(2026, 11, 22), "Europe/Berlin")
    won = {
        shop: insights.figures(session, names[shop], span, "Europe/Berlin")["won"]
        for shop in ("Seitenweise Books", "Kino Lumière", "Fuel & Go")
    }
    # Beyond the pattern's own, the demo's other members win each shop a few more.
    assert won["Seitenweise Books"]["members"] >= 13
    assert won["Kino Lumière"]["members"] >= 12
    assert won["Seitenweise Books"]["came_back"] >= 6
    assert won["Kino Lumière"]["came_back"] >= 6
    assert won["Fuel & Go"]["members"] < won["Seitenweise Books"]["members"]

    transactions = table(Transaction)
    accounts = table(Account)
    members = table(Member)
    lapsed = session.execute(
        select(transactions.c.member_account_id)
        .join(accounts, accounts.c.id == transactions.c.member_account_id)
        .join(members, members.c.id == accounts.c.member_id)
        .where(transactions.c.type == "earn", members.c.enrolled_by_merchant_id.is_(None))
        .group_by(transactions.c.member_account_id)
        .having(func.count() == 7)
        .having(func.max(transactions.c.created_at) < now - timedelta(days=35 - 21))
    ).all()
    assert len(lapsed) == 12


def test_the_demo_has_segments_that_count_only_members_who_allow_profiling(
    session: Session,
) -> None:
    """Issue 16: every other demo member (Anna among them) tells about itself and allows
    profiling, and FreshCart's and the operator's segments count only those members: the
    operator's families are exactly the consenting members with a household of 3 or more."""
    from coalition.members.models import MemberAttributes
    from coalition.segments.models import segment_members, segments

    now = datetime(2026, 11, 22, 12, tzinfo=UTC)
    fill(session, members=20, days=35, seed=8, now=now)
    anna = session.execute(
        select(table(Member).c.id).where(table(Member).c.email == "anna@demo.example")
    ).scalar_one()
    told = dict(
        session.execute(
            select(table(MemberAttributes).c.member_id, table(MemberAttributes).c.household_size)
        ).all()
    )
    kept = {
        row.name: (row.merchant_id, row.member_count, row.id)
        for row in session.execute(select(segments)).all()
    }

    assert len(told) == 10 and anna in told
    assert sorted(kept) == [
        "Families (a household of 3 or more)",
        "Lapsed (nothing for 21 days)",
        "Regulars (4+ visits in 30 days)",
    ]
    families = kept["Families (a household of 3 or more)"]
    held = set(
        session.execute(
            select(segment_members.c.member_id).where(segment_members.c.segment_id == families[2])
        ).scalars()
    )
    assert families[0] is None
    assert held == {member for member, size in told.items() if size >= 3}
    assert families[1] == len(held) > 0
    # FreshCart's segments range over its consenting customers only.
    freshcart = session.execute(
        select(table(Merchant).c.id).where(table(Merchant).c.name == "FreshCart Groceries")
    ).scalar_one()
    for name in ("Regulars (4+ visits in 30 days)", "Lapsed (nothing for 21 days)"):
        owner, count, segment = kept[name]
        members = set(
            session.execute(
                select(segment_members.c.member_id).where(segment_members.c.segment_id == segment)
            ).scalars()
        )
        assert owner == freshcart and count == len(members) and members <= set(told)
