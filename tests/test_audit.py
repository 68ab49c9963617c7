"""The audit log (SPEC 3.9): every operator API call that changes something leaves an event
naming the calling client, the action, the target and the changed fields before and after. The
operator's changing routes are read from the app's URL map, so a new one fails here until it
is audited and given a recipe below."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from coalition import audit, clock
from coalition.database import table
from coalition.segments import services as segment_services
from coalition.web.access import policy_of
from draws import services as draw_services
from merchants import services as merchant_services
from merchants.models import Merchant
from rewards import services as reward_services
from settlement import disputes, runs
from tests import factories as f
from tests.rewards.helpers import reward as listed_reward
from tests.stripe_standin import StripeStandIn, stripe_for

CHANGING = {"POST", "PUT", "PATCH", "DELETE"}
MARCH = [date(2026, 3, 1) + timedelta(days=n) for n in range(31)]


# POSTs that change nothing, with the reason they are POSTs.
READ_ONLY = {
    # A definition's live count: the definition is a JSON document, which a GET cannot carry.
    "POST /api/v1/ops/segment-counts",
}


def _segment(session: Session) -> str:
    """A coalition-wide segment, made without an audit event of its own."""
    return segment_services.create(
        session,
        segment_services.Owner(None),
        name="Everyone",
        definition={},
        now=clock.utcnow(),
    )


def _operator_changing_routes(app: Flask) -> set[str]:
    found = set()
    for rule in app.url_map.iter_rules():
        policy = policy_of(app, rule.endpoint)
        if policy is None or "operator" not in policy.kinds:
            continue
        for method in (rule.methods or set()) & CHANGING:
            found.add(f"{method} {rule.rule}")
    return found - READ_ONLY


@dataclass
class Call:
    method: str
    url: str
    body: dict[str, Any] | None
    action: str
    target: str  # "type:id"


def _public_id(session: Session, merchant_id: int) -> str:
    return session.execute(
        select(table(Merchant).c.public_id).where(table(Merchant).c.id == merchant_id)
    ).scalar_one()


def _pending(session: Session) -> str:
    return merchant_services.apply(
        session,
        name="Applicant",
        email="applicant@example.org",
        country="DE",
        category="bakery",
        website=None,
        contact_name="Ann",
        password_hash="x",
        now=clock.utcnow(),
    ).id


def _client_of_a_merchant(session: Session) -> str:
    return f.client(session, f.merchant(session), "purchases:write")["client_id"]


def _settled_march(session: Session) -> None:
    shop, alice = f.merchant(session), f.member(session)
    f.purchase(session, alice, shop, 10)
    for day in MARCH:
        runs.settle(session, day, datetime(2026, 11, 1, tzinfo=UTC))


def _operator_order(session: Session, kind: str) -> tuple[str, str | None]:
    """A member's order of one of the operator's own rewards: its id and voucher code."""
    shop, member = f.merchant(session), f.member(session)
    f.purchase(session, member, shop, 500)
    ride = listed_reward(session, None, kind=kind, points=100)
    order = reward_services.place_order(
        session, member_id=member, reward_id=ride, quantity=1, now=clock.utcnow()
    )
    return order.id, order.voucher_code


def _open_alert(session: Session) -> str:
    """An open fraud alert, as the nightly report writes one."""
    from coalition import tenancy
    from coalition.fraud import report
    from coalition.fraud.models import fraud_alerts

    finding = report.Finding("velocity", "velocity:audit", f.merchant(session), None, {})
    with tenancy.acting_as(tenancy.SYSTEM, session):
        report.write(session, MARCH[0], [finding], clock.utcnow())
        return session.execute(select(fraud_alerts.c.public_id)).scalar_one()


REWARD_BODY = {
    "name": "Balloon ride",
    "kind": "experience",
    "points": 5000,
    "fulfilment_days": 30,
    "category": "outdoors",
}


def _unaudited_draw(session: Session) -> str:
    """An open draw, its opening's audit event left out (a recipe starts with an empty log)."""
    draw = draw_services.open_draw(
        session,
        prize="A bicycle",
        entry_points=100,
        closes_at=clock.utcnow() + timedelta(days=3),
        winners_count=1,
        free=None,
        coalition_currency="EUR",
        actor=audit.Actor.operator_client("cli_setup"),
        now=clock.utcnow(),
    ).id
    session.execute(delete(audit.events_table))
    return draw


def _open_dispute(session: Session) -> str:
    """A merchant's open dispute of line 1 of its statement, raised the day after its issue."""
    shop = f.merchant(session)
    stated = f.statement(session, shop)
    return str(
        disputes.raise_dispute(
            session, shop, stated.public_id, 1, "Wrong count", f.T0 + timedelta(days=1)
        )["id"]
    )


RECIPES: dict[str, Callable[[Session], Call]] = {
    "POST /api/v1/ops/disputes/<dispute_id>/resolve": lambda s: (
        lambda d: Call(
            "POST",
            f"/api/v1/ops/disputes/{d}/resolve",
            {"outcome": "credit_note", "amount": {"amount": 50, "currency": "EUR"}},
            "dispute.resolve",
            f"dispute:{d}",
        )
    )(_open_dispute(s)),
    "POST /api/v1/ops/rewards": lambda s: Call(
        "POST", "/api/v1/ops/rewards", REWARD_BODY, "reward.created", "reward:"
    ),
    "PUT /api/v1/ops/rewards/<reward_id>": lambda s: (
        lambda r: Call(
            "PUT", f"/api/v1/ops/rewards/{r}", REWARD_BODY, "reward.updated", f"reward:{r}"
        )
    )(listed_reward(s, None)),
    "POST /api/v1/ops/orders/<order_id>/fulfil": lambda s: (
        lambda o: Call(
            "POST", f"/api/v1/ops/orders/{o}/fulfil", None, "order.fulfilled", f"order:{o}"
        )
    )(_operator_order(s, "experience")[0]),
    "POST /api/v1/ops/vouchers/<code>/accept": lambda s: (
        lambda o: Call(
            "POST", f"/api/v1/ops/vouchers/{o[1]}/accept", None, "voucher.accepted", f"order:{o[0]}"
        )
    )(_operator_order(s, "voucher")),
    "POST /api/v1/ops/fraud-alerts/<alert_id>/dismiss": lambda s: (
        lambda a: Call(
            "POST",
            f"/api/v1/ops/fraud-alerts/{a}/dismiss",
            {"reason": "A staff event"},
            "fraud_alert.dismiss",
            f"fraud_alert:{a}",
        )
    )(_open_alert(s)),
    "POST /api/v1/ops/fraud-alerts/<alert_id>/confirm": lambda s: (
        lambda a: Call(
            "POST",
            f"/api/v1/ops/fraud-alerts/{a}/confirm",
            None,
            "fraud_alert.confirm",
            f"fraud_alert:{a}",
        )
    )(_open_alert(s)),
    "POST /api/v1/ops/merchants/<merchant_id>/approve": lambda s: (
        lambda m: Call(
            "POST", f"/api/v1/ops/merchants/{m}/approve", None, "merchant.approve", f"merchant:{m}"
        )
    )(_pending(s)),
    "POST /api/v1/ops/merchants/<merchant_id>/suspend": lambda s: (
        lambda m: Call(
            "POST", f"/api/v1/ops/merchants/{m}/suspend", None, "merchant.suspend", f"merchant:{m}"
        )
    )(_public_id(s, f.merchant(s))),
    "POST /api/v1/ops/merchants/<merchant_id>/clients": lambda s: (
        lambda m: Call(
            "POST",
            f"/api/v1/ops/merchants/{m}/clients",
            {"name": "Till", "scopes": ["purchases:write"], "redirect_uris": []},
            "client.create",
            "client:",
        )
    )(_public_id(s, f.merchant(s))),
    "POST /api/v1/ops/clients/<string:client_id>/rotate-secret": lambda s: (
        lambda c: Call(
            "POST",
            f"/api/v1/ops/clients/{c}/rotate-secret",
            None,
            "client.rotate_secret",
            f"client:{c}",
        )
    )(_client_of_a_merchant(s)),
    "POST /api/v1/ops/clients/<string:client_id>/revoke": lambda s: (
        lambda c: Call(
            "POST", f"/api/v1/ops/clients/{c}/revoke", None, "client.revoke", f"client:{c}"
        )
    )(_client_of_a_merchant(s)),
    "POST /api/v1/ops/settlement-runs": lambda s: Call(
        "POST",
        "/api/v1/ops/settlement-runs",
        {"business_date": "2026-03-02"},
        "settlement_run.request",
        "settlement_run:",
    ),
    "POST /api/v1/ops/statements": lambda s: (
        _settled_march(s),
        Call(
            "POST",
            "/api/v1/ops/statements",
            {"month": "2026-03"},
            "statements.issue",
            "month:2026-03",
        ),
    )[1],
    "POST /api/v1/ops/merchants/<merchant_id>/stripe-account-link": lambda s: (
        lambda m: Call(
            "POST",
            f"/api/v1/ops/merchants/{m}/stripe-account-link",
            {"return_url": "https://ops.example/back", "refresh_url": "https://ops.example/again"},
            "merchant.stripe_account_link",
            f"merchant:{m}",
        )
    )(_public_id(s, f.merchant(s))),
    "PUT /api/v1/ops/merchants/<merchant_id>/budget": lambda s: (
        lambda m: Call(
            "PUT",
            f"/api/v1/ops/merchants/{m}/budget",
            {"monthly_issuance_cap": 5000},
            "merchant.budget",
            f"merchant:{m}",
        )
    )(_public_id(s, f.merchant(s))),
    "POST /api/v1/ops/draws": lambda s: Call(
        "POST",
        "/api/v1/ops/draws",
        {
            "prize": "A bicycle",
            "entry_points": 100,
            "closes_at": (clock.utcnow() + timedelta(days=3)).isoformat(),
            "winners_count": 1,
        },
        "draw.opened",
        "draw:",
    ),
    "POST /api/v1/ops/draws/<draw_id>/close": lambda s: (
        lambda d: Call("POST", f"/api/v1/ops/draws/{d}/close", None, "draw.closed", f"draw:{d}")
    )(_unaudited_draw(s)),
    "POST /api/v1/ops/segments": lambda s: Call(
        "POST",
        "/api/v1/ops/segments",
        {"name": "Young parents", "definition": {"household_size": {"min": 3}}},
        "segment.created",
        "segment:",
    ),
    "PUT /api/v1/ops/segments/<segment_id>": lambda s: (
        lambda g: Call(
            "PUT",
            f"/api/v1/ops/segments/{g}",
            {"name": "Lapsed", "definition": {"lapsed_days": 60}},
            "segment.updated",
            f"segment:{g}",
        )
    )(_segment(s)),
    "DELETE /api/v1/ops/segments/<segment_id>": lambda s: (
        lambda g: Call(
            "DELETE", f"/api/v1/ops/segments/{g}", None, "segment.deleted", f"segment:{g}"
        )
    )(_segment(s)),
    "PUT /api/v1/ops/economics": lambda s: Call(
        "PUT",
        "/api/v1/ops/economics",
        {
            "effective_from": (clock.utcnow() + timedelta(days=10)).date().isoformat(),
            "merchant": _public_id(s, f.merchant(s)),
            "terms": {"expiry_months": 12},
        },
        "economics.schedule",
        "economics:",
    ),
}


@pytest.fixture
def stripe(app: Flask, session: Session) -> Iterator[StripeStandIn]:
    with stripe_for(app) as stand_in:
        yield stand_in


def test_every_operator_route_that_changes_something_has_an_audit_recipe(app: Flask) -> None:
    assert _operator_changing_routes(app) == set(RECIPES)


@pytest.mark.parametrize("route", sorted(RECIPES))
def test_each_operator_change_over_the_api_writes_an_audit_event(
    route: str, client: FlaskClient, session: Session, stripe: StripeStandIn
) -> None:
    call = RECIPES[route](session)
    ops = f.operator_headers(session)
    assert audit.events(session).rows == []  # nothing logged before the call

    answer = client.open(call.url, method=call.method, json=call.body, headers=ops)

    assert answer.status_code < 300, answer.get_data(as_text=True)
    [event] = audit.events(session, action=call.action).rows
    assert event["actor_kind"] == "operator_client"
    assert event["actor_id"].startswith("cli_")
    kind, _, ident = call.target.partition(":")
    assert event["target_type"] == kind
    if ident:
        assert event["target_id"] == ident
    assert event["after"], event


def test_approving_over_the_api_logs_the_status_before_and_after(
    client: FlaskClient, session: Session
) -> None:
    applicant = _pending(session)
    ops = f.operator_headers(session)

    client.post(f"/api/v1/ops/merchants/{applicant}/approve", headers=ops)
    client.post(f"/api/v1/ops/merchants/{applicant}/suspend", headers=ops)

    logged = audit.events(session, target=f"merchant:{applicant}").rows
    assert [(e["action"], e["before"], e["after"]) for e in logged] == [
        ("merchant.suspend", {"status": "active"}, {"status": "suspended"}),
        ("merchant.approve", {"status": "pending"}, {"status": "active"}),
    ]


def test_a_refused_change_leaves_no_event(client: FlaskClient, session: Session) -> None:
    ops = f.operator_headers(session)
    answer = client.post("/api/v1/ops/merchants/mer_nobody/approve", headers=ops)
    assert answer.status_code == 404
    assert audit.events(session).rows == []


def test_the_log_filters_by_actor_action_target_and_day_and_pages(session: Session) -> None:
    ann = audit.Actor.staff(1, "ann@operator.example")
    till = audit.Actor.operator_client("cli_x", "Batch")
    day = datetime(2026, 11, 2, 12, tzinfo=UTC)
    for n in range(30):
        audit.record(session, ann, "merchant.approve", "merchant", f"mer_{n}", now=day)
    audit.record(session, till, "economics.schedule", "economics", "coalition", now=day)
    audit.record(session, ann, "merchant.suspend", "merchant", "mer_1", now=day + timedelta(days=1))

    first = audit.events(session, page=1)
    second = audit.events(session, page=2)
    assert len(first.rows) == 25 and first.has_next and not first.has_previous
    assert len(second.rows) == 7 and second.has_previous and not second.has_next
    assert first.rows[0]["action"] == "merchant.suspend"  # newest first
    assert len(audit.events(session, actor="ANN@operator").rows) == 25
    assert [e["actor_label"] for e in audit.events(session, actor="cli_x").rows] == ["Batch"]
    assert len(audit.events(session, action="merchant.").rows) == 25
    assert [e["action"] for e in audit.events(session, target="merchant:mer_1").rows] == [
        "merchant.suspend",
        "merchant.approve",
    ]
    only_day = audit.events(session, since=date(2026, 11, 3), until=date(2026, 11, 3)).rows
    assert [e["action"] for e in only_day] == ["merchant.suspend"]
    assert audit.actions(session) == ["economics.schedule", "merchant.approve", "merchant.suspend"]
