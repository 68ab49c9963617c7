"""The merchant API's points routes as a till meets them (SPEC 3.3): purchases, refunds,
redemptions with the member's code or token, reversals, holds, the merchant's transactions;
idempotency over HTTP (SPEC 3.1), tenant isolation (SPEC 3.2) and bad input (QUALITY)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from coalition import clock, tenancy
from coalition.ledger import reads
from coalition.ledger.models import Hold, Transaction
from coalition.members import codes
from coalition.members.models import Member
from coalition.outbox import OutboxEvent
from merchants import purchases, schemas
from merchants.api.points import purchase_body
from tests import factories as f

PURCHASES = "/api/v1/purchases"
REDEMPTIONS = "/api/v1/redemptions"
HOLDS = "/api/v1/holds"


@pytest.fixture
def now(monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    """The API's clock, frozen at the start of a code step (a test moves it by hand)."""
    wall = datetime.now(UTC).replace(microsecond=0)
    moment = [wall - timedelta(seconds=wall.second % codes.STEP_SECONDS)]
    monkeypatch.setattr(clock, "utcnow", lambda: moment[0])
    return moment


@pytest.fixture
def shop(session) -> int:
    return f.merchant(session, "Bakery")


@pytest.fixture
def till(session, shop) -> dict[str, str]:
    return f.merchant_headers(session, shop)


def card_of(session, member_id: int) -> str:
    return session.execute(select(Member.card_number).where(Member.id == member_id)).scalar_one()


def public_id_of(session, member_id: int) -> str:
    return session.execute(select(Member.public_id).where(Member.id == member_id)).scalar_one()


def code_of(session, member_id: int, at: datetime) -> str:
    secret = session.execute(select(Member.totp_secret).where(Member.id == member_id)).scalar_one()
    return codes.current_code(secret, at)[0]


def purchase(member: str, amount: int = 1250, external_id: str = "receipt-1", **extra: Any):
    return {
        "member": member,
        "amount": amount,
        "currency": "EUR",
        "external_id": external_id,
        **extra,
    }


def balance(session, member_id: int) -> int:
    return reads.balance(session, member_id, clock.utcnow())["balance"]


def count(session, model: Any) -> int:
    """Rows of every tenant (a request leaves its tenant behind in this thread)."""
    with tenancy.acting_as(tenancy.SYSTEM, session):
        return session.execute(select(func.count()).select_from(model)).scalar_one()


def problem(response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_json()
    assert response.content_type == "application/problem+json"
    body = response.get_json(force=True)
    assert body["code"] == code, body
    return body


# Purchases.


def test_a_first_purchase_earns_base_points_and_the_welcome_bonus(session, client, shop, till):
    alice = f.member(session)

    response = client.post(
        PURCHASES, json=purchase(card_of(session, alice), 1250, store="Main St"), headers=till
    )

    assert response.status_code == 201
    body = response.get_json()
    schemas.PurchaseResultSchema().load(body)
    assert body["transaction"]["type"] == "earn"
    assert body["transaction"]["points"] == 112
    assert body["transaction"]["breakdown"] == {
        "base": 12,
        "campaign": 0,
        "tier": 0,
        "welcome": 100,
        "stamp": 0,
        "premium": 0,
    }
    assert body["member"] == {
        "id": public_id_of(session, alice),
        "balance": 112,
        "tier": "Member",
    }


def test_the_welcome_bonus_comes_once_in_the_whole_coalition(session, client, shop, till):
    alice, other_shop = f.member(session), f.merchant(session, "Florist")
    card = card_of(session, alice)
    client.post(PURCHASES, json=purchase(card, 1000, "a-1"), headers=till)

    elsewhere = client.post(
        PURCHASES,
        json=purchase(card, 1000, "b-1", items=[{"sku": "rose", "amount": 1000, "quantity": 2}]),
        headers=f.merchant_headers(session, other_shop),
    )

    assert elsewhere.status_code == 201
    assert elsewhere.get_json()["transaction"]["breakdown"]["welcome"] == 0
    assert balance(session, alice) == 100 + 10 + 10


def test_a_member_is_addressed_by_mbr_id_too(session, client, till):
    alice = f.member(session)

    response = client.post(PURCHASES, json=purchase(public_id_of(session, alice)), headers=till)

    assert response.status_code == 201
    assert balance(session, alice) == 112


def test_a_repeated_external_id_replays_the_first_purchase(session, client, till):
    alice = f.member(session)
    card = card_of(session, alice)
    first = client.post(PURCHASES, json=purchase(card, 1250, "till-3-0042"), headers=till)
    client.post(PURCHASES, json=purchase(card, 5000, "till-3-0043"), headers=till)

    again = client.post(PURCHASES, json=purchase(card, 1250, "till-3-0042"), headers=till)

    assert again.status_code == 200
    assert again.get_json() == first.get_json()
    assert balance(session, alice) == 112 + 50
    assert count(session, Transaction) == 2


def test_an_external_id_reused_for_another_purchase_is_a_conflict(session, client, till):
    alice, bob = f.member(session), f.member(session)
    client.post(PURCHASES, json=purchase(card_of(session, alice), 1250, "r-1"), headers=till)

    other_amount = client.post(
        PURCHASES, json=purchase(card_of(session, alice), 999, "r-1"), headers=till
    )
    other_member = client.post(
        PURCHASES, json=purchase(card_of(session, bob), 1250, "r-1"), headers=till
    )

    problem(other_amount, 409, "idempotency_conflict")
    problem(other_member, 409, "idempotency_conflict")
    assert balance(session, bob) == 0
    assert count(session, Transaction) == 1


def test_two_merchants_may_use_the_same_external_id(session, client, shop, till):
    alice, other_shop = f.member(session), f.merchant(session, "Florist")
    card = card_of(session, alice)

    mine = client.post(PURCHASES, json=purchase(card, 1000, "0001"), headers=till)
    theirs = client.post(
        PURCHASES,
        json=purchase(card, 1000, "0001"),
        headers=f.merchant_headers(session, other_shop),
    )

    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert balance(session, alice) == 120


def test_an_unknown_or_mistyped_card_is_not_found(session, client, till):
    alice = f.member(session)
    card = card_of(session, alice)
    typo = card[:-1] + str((int(card[-1]) + 1) % 10)

    problem(client.post(PURCHASES, json=purchase(typo), headers=till), 404, "not_found")
    problem(client.post(PURCHASES, json=purchase("mbr_nobody"), headers=till), 404, "not_found")
    assert count(session, Transaction) == 0


def test_a_purchase_in_another_currency_is_refused(session, client, till):
    alice = f.member(session)

    response = client.post(
        PURCHASES, json={**purchase(card_of(session, alice)), "currency": "USD"}, headers=till
    )

    problem(response, 422, "unsupported_currency")
    assert count(session, Transaction) == 0


@pytest.mark.parametrize("field", ["balance", "tier", "merchant_id", "status", "points"])
def test_fields_a_caller_must_not_set_are_refused(session, client, till, field):
    alice = f.member(session)

    response = client.post(
        PURCHASES, json={**purchase(card_of(session, alice)), field: 1}, headers=till
    )

    body = problem(response, 422, "validation_error")
    assert body["errors"] == {field: ["Unknown field."]}
    assert count(session, Transaction) == 0


def _in(**delta: int) -> str:
    return (clock.utcnow() + timedelta(**delta)).isoformat()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"amount": "1250"}, "amount"),
        ({"amount": 12.5}, "amount"),
        ({"amount": True}, "amount"),
        ({"amount": 0}, "amount"),
        ({"amount": -5}, "amount"),
        ({"amount": 10**30}, "amount"),
        ({"amount": None}, "amount"),
        ({"currency": "eur"}, "currency"),
        ({"currency": "EURO"}, "currency"),
        ({"external_id": ""}, "external_id"),
        ({"external_id": "   "}, "external_id"),
        ({"external_id": "x" * 101}, "external_id"),
        ({"external_id": "a\x00b"}, "external_id"),
        ({"external_id": "\ud800"}, "external_id"),
        ({"external_id": 42}, "external_id"),
        ({"member": ["1234"]}, "member"),
        ({"store": "s" * 101}, "store"),
        ({"items": [{"sku": "x", "amount": 1, "price": 3}]}, "items"),
        ({"items": [{"sku": "x", "amount": -1}]}, "items"),
        ({"items": [{"sku": "x", "amount": 1}] * 501}, "items"),
        ({"items": {"sku": "x"}}, "items"),
        ({"occurred_at": "yesterday"}, "occurred_at"),
        ({"occurred_at": "2026-01-01T10:00:00"}, "occurred_at"),
        ({"occurred_at": "0001-01-01T00:00:00+14:00"}, "occurred_at"),
    ],
)
def test_bad_input_is_a_problem_naming_the_field_and_writes_nothing(
    session, client, till, changes, field
):
    alice = f.member(session)

    response = client.post(
        PURCHASES, json={**purchase(card_of(session, alice)), **changes}, headers=till
    )

    body = problem(response, 422, "validation_error")
    assert field in body["errors"]
    assert count(session, Transaction) == 0


def test_a_purchase_dated_in_the_future_is_refused_but_a_little_clock_skew_is_not(
    session, client, till
):
    card = card_of(session, f.member(session))

    ahead = client.post(PURCHASES, json=purchase(card, occurred_at=_in(hours=1)), headers=till)
    skewed = client.post(
        PURCHASES, json=purchase(card, 1000, "r-2", occurred_at=_in(minutes=2)), headers=till
    )

    assert problem(ahead, 422, "validation_error")["errors"] == {
        "occurred_at": ["must not be in the future"]
    }
    assert skewed.status_code == 201


@pytest.mark.parametrize(
    ("data", "content_type", "status", "code"),
    [
        (b'{"member": ', "application/json", 400, "malformed_json"),
        (b"[1, 2]", "application/json", 422, "validation_error"),
        (b"", "application/json", 400, "malformed_json"),
        (b"member=1", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_a_problem(
    session, client, till, data, content_type, status, code
):
    response = client.post(PURCHASES, data=data, headers={**till, "Content-Type": content_type})

    problem(response, status, code)
    assert count(session, Transaction) == 0


def test_purchases_need_a_merchant_token_with_the_purchases_scope(session, client, shop):
    card = card_of(session, f.member(session))
    reader = f.merchant_headers(session, shop, "transactions:read")
    member = f.member_headers(session, shop, f.member(session))

    problem(client.post(PURCHASES, json=purchase(card)), 401, "invalid_token")
    problem(client.post(PURCHASES, json=purchase(card), headers=reader), 403, "insufficient_scope")
    problem(client.post(PURCHASES, json=purchase(card), headers=member), 403, "wrong_token_kind")
    assert count(session, Transaction) == 0


# Refunds.


def test_a_partial_refund_claws_back_points_in_proportion(session, client, till):
    alice = f.member(session)
    card = card_of(session, alice)
    bought = client.post(PURCHASES, json=purchase(card, 10000, "r-1"), headers=till).get_json()
    purchase_id = bought["transaction"]["id"]

    response = client.post(
        f"{PURCHASES}/{purchase_id}/refunds",
        json={"amount": 2500, "external_id": "return-1"},
        headers=till,
    )

    assert response.status_code == 201
    body = response.get_json()
    schemas.RefundResultSchema().load(body)
    assert body["points_clawed_back"] == 25
    assert body["transaction"]["purchase"] == purchase_id
    assert body["transaction"]["amount"] == {"amount": 2500, "currency": "EUR"}
    assert body["member"]["balance"] == 100 + 100 - 25
    assert balance(session, alice) == 175


def test_a_refund_larger_than_the_purchase_is_refused(session, client, till):
    card = card_of(session, f.member(session))
    bought = client.post(PURCHASES, json=purchase(card, 1000), headers=till).get_json()

    response = client.post(
        f"{PURCHASES}/{bought['transaction']['id']}/refunds",
        json={"amount": 1001, "external_id": "return-1"},
        headers=till,
    )

    problem(response, 422, "refund_exceeds_purchase")


def _refund(client, till, purchase_id: str, amount: int, external_id: str | None):
    body: dict[str, Any] = {"amount": amount}
    if external_id is not None:
        body["external_id"] = external_id
    return client.post(f"{PURCHASES}/{purchase_id}/refunds", json=body, headers=till)


def test_a_retried_refund_claws_back_once_and_answers_the_first_result(session, client, till):
    """A till that retries a refund without an Idempotency-Key (its connection dropped) must not
    claw the points back twice: the return receipt's id makes the refund once."""
    alice = f.member(session)
    bought = client.post(
        PURCHASES, json=purchase(card_of(session, alice), 4000), headers=till
    ).get_json()
    purchase_id = bought["transaction"]["id"]

    first = _refund(client, till, purchase_id, 2000, "return-7")
    again = _refund(client, till, purchase_id, 2000, "return-7")

    assert first.status_code == 201, first.get_json()
    assert first.get_json()["points_clawed_back"] == 20
    assert again.status_code == 200, again.get_json()
    assert again.get_json() == first.get_json()
    assert balance(session, alice) == 40 + 100 - 20
    assert count(session, Transaction) == 2  # the purchase and one refund
    # The rest of the purchase can still be refunded, under another receipt.
    rest = _refund(client, till, purchase_id, 2000, "return-8")
    assert rest.status_code == 201
    assert rest.get_json()["points_clawed_back"] == 20 + 100


def test_a_return_receipt_reused_for_another_refund_is_a_conflict(session, client, till):
    alice = f.member(session)
    card = card_of(session, alice)
    one = client.post(PURCHASES, json=purchase(card, 4000, "r-1"), headers=till).get_json()
    other = client.post(PURCHASES, json=purchase(card, 4000, "r-2"), headers=till).get_json()
    first = _refund(client, till, one["transaction"]["id"], 1000, "return-7")
    before = (balance(session, alice), count(session, Transaction))

    other_amount = _refund(client, till, one["transaction"]["id"], 1500, "return-7")
    other_purchase = _refund(client, till, other["transaction"]["id"], 1000, "return-7")

    assert first.status_code == 201
    for answer in (other_amount, other_purchase):
        body = problem(answer, 409, "idempotency_conflict")
        assert body["transaction"] == first.get_json()["transaction"]["id"]
    assert (balance(session, alice), count(session, Transaction)) == before


@pytest.mark.parametrize("external_id", [None, "x" * 101])
def test_a_refund_names_its_return_receipt(session, client, till, external_id):
    card = card_of(session, f.member(session))
    bought = client.post(PURCHASES, json=purchase(card, 4000), headers=till).get_json()
    before = count(session, Transaction)

    response = _refund(client, till, bought["transaction"]["id"], 1000, external_id)

    body = problem(response, 422, "validation_error")
    assert "external_id" in body["errors"]
    assert count(session, Transaction) == before


@pytest.mark.parametrize("purchase_id", ["txn_doesnotexist", "not-an-id", "txn_a%00b"])
def test_refunding_an_unknown_purchase_is_not_found(session, client, till, purchase_id):
    response = client.post(
        f"{PURCHASES}/{purchase_id}/refunds",
        json={"amount": 1, "external_id": "return-1"},
        headers=till,
    )

    problem(response, 404, "not_found")


def test_another_merchants_purchase_cannot_be_refunded_or_seen(session, client, shop, till):
    alice, rival = f.member(session), f.merchant(session, "Rival")
    theirs = client.post(
        PURCHASES,
        json=purchase(card_of(session, alice), 10000),
        headers=f.merchant_headers(session, rival),
    ).get_json()
    before = (balance(session, alice), count(session, Transaction))

    refund = client.post(
        f"{PURCHASES}/{theirs['transaction']['id']}/refunds",
        json={"amount": 100, "external_id": "return-1"},
        headers=till,
    )
    listed = client.get("/api/v1/transactions", headers=till)

    problem(refund, 404, "not_found")
    assert listed.get_json() == {"data": [], "next_cursor": None}
    assert (balance(session, alice), count(session, Transaction)) == before


# Redemptions.


def _funded(session, shop: int, points: int = 500) -> int:
    member = f.member(session)
    f.purchase(session, member, shop, points)
    return member


def test_a_till_redeems_with_the_members_current_code(session, client, shop, till, now):
    alice = _funded(session, shop)

    response = client.post(
        REDEMPTIONS,
        json={
            "member": card_of(session, alice),
            "code": code_of(session, alice, now[0]),
            "points": 120,
            "external_id": "red-1",
        },
        headers=till,
    )

    assert response.status_code == 201
    body = response.get_json()
    schemas.RedemptionResultSchema().load(body)
    assert body["transaction"]["type"] == "redeem"
    assert body["transaction"]["points"] == 120
    assert body["transaction"]["value"] == {"amount": 120, "currency": "EUR"}
    assert body["member"]["balance"] == 380
    assert balance(session, alice) == 380


def test_a_redemption_beyond_the_balance_is_refused(session, client, shop, till, now):
    alice = _funded(session, shop, 100)

    response = client.post(
        REDEMPTIONS,
        json={
            "member": card_of(session, alice),
            "code": code_of(session, alice, now[0]),
            "points": 101,
            "external_id": "red-1",
        },
        headers=till,
    )

    assert problem(response, 422, "insufficient_points")["available"] == 100
    assert balance(session, alice) == 100


def test_a_code_is_single_use_within_its_step(session, client, shop, till, now):
    alice = _funded(session, shop)
    card = card_of(session, alice)

    def redeem(external_id: str):
        return client.post(
            REDEMPTIONS,
            json={
                "member": card,
                "code": code_of(session, alice, now[0]),
                "points": 10,
                "external_id": external_id,
            },
            headers=till,
        )

    first, again = redeem("red-1"), redeem("red-2")
    now[0] += timedelta(seconds=codes.STEP_SECONDS)
    next_step = redeem("red-3")

    assert first.status_code == 201
    problem(again, 403, "invalid_code")
    assert next_step.status_code == 201
    assert balance(session, alice) == 480


def test_five_wrong_codes_lock_redemption_even_with_the_right_code(
    session, client, shop, till, now
):
    alice = _funded(session, shop)
    card, right = card_of(session, alice), code_of(session, alice, now[0])
    wrong = f"{(int(right) + 1) % 10**6:06d}"

    def redeem(code: str, external_id: str):
        return client.post(
            REDEMPTIONS,
            json={"member": card, "code": code, "points": 10, "external_id": external_id},
            headers=till,
        )

    refusals = [redeem(wrong, f"red-{n}") for n in range(5)]
    locked = redeem(right, "red-right")

    for refusal in refusals:
        problem(refusal, 403, "invalid_code")
    problem(locked, 403, "redemption_locked")
    assert balance(session, alice) == 500


def test_each_wrong_code_at_a_till_is_a_fraud_event_of_that_merchant(
    session, client, shop, till, now
):
    """Issue 16: the fraud report's bursts of wrong codes read these events."""
    from coalition import tenancy
    from coalition.fraud.models import fraud_events

    alice = _funded(session, shop)
    card, right = card_of(session, alice), code_of(session, alice, now[0])
    wrong = f"{(int(right) + 1) % 10**6:06d}"
    for n in range(5):
        client.post(
            REDEMPTIONS,
            json={"member": card, "code": wrong, "points": 10, "external_id": f"w{n}"},
            headers=till,
        )

    with tenancy.acting_as(tenancy.SYSTEM, session):
        events = session.execute(
            select(
                fraud_events.c.kind, fraud_events.c.member_id, fraud_events.c.merchant_id
            ).order_by(fraud_events.c.id)
        ).all()
    assert events == [("wrong_code", alice, shop)] * 4 + [("code_lockout", alice, shop)]


def test_four_wrong_codes_do_not_lock(session, client, shop, till, now):
    alice = _funded(session, shop)
    card, right = card_of(session, alice), code_of(session, alice, now[0])
    wrong = f"{(int(right) + 1) % 10**6:06d}"
    for n in range(4):
        client.post(
            REDEMPTIONS,
            json={"member": card, "code": wrong, "points": 10, "external_id": f"r{n}"},
            headers=till,
        )

    response = client.post(
        REDEMPTIONS,
        json={"member": card, "code": right, "points": 10, "external_id": "ok"},
        headers=till,
    )

    assert response.status_code == 201


def test_a_merchant_token_must_name_the_member_and_give_a_code(session, client, shop, till):
    alice = _funded(session, shop)

    response = client.post(
        REDEMPTIONS,
        json={"member": card_of(session, alice), "points": 10, "external_id": "r"},
        headers=till,
    )

    assert problem(response, 422, "validation_error")["errors"] == {
        "code": ["Missing data for required field."]
    }


def test_a_member_token_with_the_redeem_scope_is_proof_of_presence(session, client, shop):
    alice = _funded(session, shop)
    app = f.member_headers(session, shop, alice, "redeem")

    response = client.post(REDEMPTIONS, json={"points": 50, "external_id": "app-1"}, headers=app)

    assert response.status_code == 201
    assert response.get_json()["member"]["id"] == public_id_of(session, alice)
    assert balance(session, alice) == 450


def test_a_member_token_names_neither_member_nor_code(session, client, shop):
    alice, bob = _funded(session, shop), _funded(session, shop)
    app = f.member_headers(session, shop, alice, "redeem")

    response = client.post(
        REDEMPTIONS,
        json={"member": card_of(session, bob), "points": 50, "external_id": "app-1"},
        headers=app,
    )

    problem(response, 422, "validation_error")
    assert balance(session, bob) == 500


def test_a_member_token_without_the_redeem_scope_cannot_spend(session, client, shop):
    alice = _funded(session, shop)
    reader = f.member_headers(session, shop, alice, "balance:read")

    response = client.post(REDEMPTIONS, json={"points": 5, "external_id": "x"}, headers=reader)

    problem(response, 403, "insufficient_scope")
    assert balance(session, alice) == 500


def test_a_repeated_redemption_external_id_replays_without_a_code(session, client, shop, till, now):
    alice = _funded(session, shop)
    card = card_of(session, alice)
    ask = {"member": card, "code": code_of(session, alice, now[0]), "points": 40}
    first = client.post(REDEMPTIONS, json={**ask, "external_id": "red-9"}, headers=till)

    again = client.post(REDEMPTIONS, json={**ask, "external_id": "red-9"}, headers=till)
    other = client.post(
        REDEMPTIONS, json={**ask, "points": 41, "external_id": "red-9"}, headers=till
    )

    assert again.status_code == 200
    assert again.get_json() == first.get_json()
    problem(other, 409, "idempotency_conflict")
    assert balance(session, alice) == 460


# Reversals.


def _redeemed(session, client, shop, till, now, points: int = 100) -> tuple[int, str]:
    alice = _funded(session, shop)
    response = client.post(
        REDEMPTIONS,
        json={
            "member": card_of(session, alice),
            "code": code_of(session, alice, now[0]),
            "points": points,
            "external_id": f"red-{alice}",
        },
        headers=till,
    )
    return alice, response.get_json()["transaction"]["id"]


def test_a_reversal_gives_the_points_back_once(session, client, shop, till, now):
    alice, redemption = _redeemed(session, client, shop, till, now)

    first = client.post(f"{REDEMPTIONS}/{redemption}/reversal", headers=till)
    second = client.post(f"{REDEMPTIONS}/{redemption}/reversal", headers=till)

    assert first.status_code == 201
    body = first.get_json()
    schemas.ReversalResultSchema().load(body)
    assert body["transaction"]["redemption"] == redemption
    assert body["member"]["balance"] == 500
    problem(second, 409, "already_reversed")
    assert balance(session, alice) == 500


def test_another_merchants_redemption_cannot_be_reversed(session, client, shop, till, now):
    alice, redemption = _redeemed(session, client, shop, till, now)
    rival = f.merchant_headers(session, f.merchant(session, "Rival"))

    response = client.post(f"{REDEMPTIONS}/{redemption}/reversal", headers=rival)

    problem(response, 404, "not_found")
    assert balance(session, alice) == 400


def test_a_purchase_is_not_a_redemption_to_reverse(session, client, till):
    bought = client.post(
        PURCHASES, json=purchase(card_of(session, f.member(session))), headers=till
    ).get_json()

    response = client.post(f"{REDEMPTIONS}/{bought['transaction']['id']}/reversal", headers=till)

    problem(response, 404, "not_found")


# Holds.


def _hold(session, client, till, member: int, at: datetime, points: int = 200, **extra: Any):
    return client.post(
        HOLDS,
        json={
            "member": card_of(session, member),
            "code": code_of(session, member, at),
            "points": points,
            **extra,
        },
        headers=till,
    )


def test_a_hold_reserves_points_then_a_partial_capture_spends_them(
    session, client, shop, till, now
):
    alice = _funded(session, shop)

    held = _hold(session, client, till, alice, now[0], ttl_seconds=3600)
    hold_id = held.get_json()["hold"]["id"]
    captured = client.post(f"{HOLDS}/{hold_id}/capture", json={"points": 150}, headers=till)

    assert held.status_code == 201
    schemas.HoldResultSchema().load(held.get_json())
    assert held.get_json()["hold"]["status"] == "active"
    assert held.get_json()["member"] | {"id": None} == {
        "id": None,
        "balance": 500,
        "available": 300,
        "tier": "Member",
    }
    assert captured.status_code == 201
    body = captured.get_json()
    schemas.CaptureResultSchema().load(body)
    assert body["transaction"]["points"] == 150
    assert body["transaction"]["hold"] == hold_id
    assert body["member"]["balance"] == 350
    assert body["member"]["available"] == 350


def test_a_voided_hold_releases_its_points_and_cannot_be_captured(session, client, shop, till, now):
    alice = _funded(session, shop)
    hold_id = _hold(session, client, till, alice, now[0]).get_json()["hold"]["id"]

    voided = client.post(f"{HOLDS}/{hold_id}/void", headers=till)
    captured = client.post(f"{HOLDS}/{hold_id}/capture", headers=till)

    assert voided.status_code == 200
    assert voided.get_json()["hold"]["status"] == "voided"
    assert voided.get_json()["member"]["available"] == 500
    problem(captured, 409, "hold_not_active")
    assert balance(session, alice) == 500


def test_a_hold_needs_the_code_and_counts_a_wrong_one(session, client, shop, till, now):
    alice = _funded(session, shop)
    right = code_of(session, alice, now[0])
    wrong = f"{(int(right) + 1) % 10**6:06d}"

    response = client.post(
        HOLDS,
        json={"member": card_of(session, alice), "code": wrong, "points": 10},
        headers=till,
    )

    problem(response, 403, "invalid_code")
    failures = session.execute(select(Member.code_failures).where(Member.id == alice)).scalar_one()
    assert failures == 1
    assert count(session, Hold) == 0


@pytest.mark.parametrize("ttl_seconds", [0, 7 * 24 * 3600 + 1, "60"])
def test_a_hold_lasts_at_most_seven_days(session, client, shop, till, now, ttl_seconds):
    alice = _funded(session, shop)

    response = _hold(session, client, till, alice, now[0], ttl_seconds=ttl_seconds)

    assert "ttl_seconds" in problem(response, 422, "validation_error")["errors"]


def test_another_merchants_hold_cannot_be_captured_or_voided(session, client, shop, till, now):
    alice = _funded(session, shop)
    hold_id = _hold(session, client, till, alice, now[0]).get_json()["hold"]["id"]
    rival = f.merchant_headers(session, f.merchant(session, "Rival"))

    problem(client.post(f"{HOLDS}/{hold_id}/capture", headers=rival), 404, "not_found")
    problem(client.post(f"{HOLDS}/{hold_id}/void", headers=rival), 404, "not_found")
    status = session.execute(select(Hold.status).where(Hold.public_id == hold_id)).scalar_one()
    assert status == "active"
    assert balance(session, alice) == 500


# Transactions.


def test_the_merchant_lists_its_own_transactions_newest_first_with_filters(
    session, client, shop, till, now
):
    alice, bob = f.member(session), f.member(session)
    rival = f.merchant_headers(session, f.merchant(session, "Rival"))
    for n in range(3):
        client.post(PURCHASES, json=purchase(card_of(session, alice), 1000, f"a{n}"), headers=till)
    client.post(PURCHASES, json=purchase(card_of(session, bob), 1000, "b0"), headers=till)
    client.post(PURCHASES, json=purchase(card_of(session, bob), 1000, "elsewhere"), headers=rival)
    now[0] += timedelta(seconds=codes.STEP_SECONDS)
    client.post(
        REDEMPTIONS,
        json={
            "member": card_of(session, alice),
            "code": code_of(session, alice, now[0]),
            "points": 5,
            "external_id": "red",
        },
        headers=till,
    )

    everything = client.get("/api/v1/transactions", headers=till).get_json()
    alices = client.get(
        "/api/v1/transactions", query_string={"member": card_of(session, alice)}, headers=till
    ).get_json()
    redemptions = client.get(
        "/api/v1/transactions", query_string={"type": "redeem"}, headers=till
    ).get_json()
    later = client.get(
        "/api/v1/transactions", query_string={"since": now[0].isoformat()}, headers=till
    ).get_json()
    earlier = client.get(
        "/api/v1/transactions", query_string={"until": now[0].isoformat()}, headers=till
    ).get_json()

    schemas.TransactionSchema(many=True).load(everything["data"])
    assert [t["external_id"] for t in everything["data"]] == ["red", "b0", "a2", "a1", "a0"]
    assert len(alices["data"]) == 4
    assert [t["type"] for t in redemptions["data"]] == ["redeem"]
    assert [t["external_id"] for t in later["data"]] == ["red"]
    assert len(earlier["data"]) == 4


def test_transactions_come_in_cursor_pages(session, client, till):
    card = card_of(session, f.member(session))
    for n in range(5):
        client.post(PURCHASES, json=purchase(card, 100, f"p{n}"), headers=till)

    seen, cursor, pages = [], None, 0
    while True:
        query = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get("/api/v1/transactions", query_string=query, headers=till).get_json()
        seen += [t["external_id"] for t in page["data"]]
        cursor, pages = page["next_cursor"], pages + 1
        if cursor is None:
            break

    assert seen == ["p4", "p3", "p2", "p1", "p0"]
    assert pages == 3


def test_since_and_until_take_a_date_as_its_first_moment_in_the_coalitions_zone(
    session, client, shop, till
):
    # The test settings' zone is Europe/Berlin, an hour ahead of UTC in November.
    alice = f.member(session)
    for hour, minute in ((22, 30), (23, 30)):  # 23:30 on 31 October and 00:30 on 1 November
        f.purchase(session, alice, shop, 5, now=datetime(2026, 10, 31, hour, minute, tzinfo=UTC))

    def created(query: dict[str, str]) -> list[str]:
        page = client.get("/api/v1/transactions", query_string=query, headers=till).get_json()
        return [t["created_at"] for t in page["data"]]

    november = created({"since": "2026-11-01", "until": "2026-12-01"})
    october = created({"until": "2026-11-01"})

    assert november == ["2026-10-31T23:30:00+00:00"]
    assert october == ["2026-10-31T22:30:00+00:00"]
    assert created({"since": "2026-11-01T00:00:00+01:00"}) == november  # the same moment


@pytest.mark.parametrize(
    "query",
    [
        {"type": "gift"},
        {"since": "monday"},
        {"since": "2026-13-01"},
        {"since": "0001-01-01"},  # its first moment in Berlin is still year 0 in UTC
        {"since": "0001-01-01T00:00:00+14:00"},
        {"until": "9999-12-31T23:59:59-14:00"},
        {"until": "2026-11-01T10:00:00"},  # a time without its zone
        {"limit": 501},
        {"cursor": "bogus"},
        {"page": 2},
    ],
)
def test_bad_transaction_filters_are_problems(session, client, till, query):
    response = client.get("/api/v1/transactions", query_string=query, headers=till)

    problem(response, 422, "validation_error")


def test_an_unknown_member_filter_lists_nothing(session, client, till):
    response = client.get(
        "/api/v1/transactions", query_string={"member": "mbr_nobody"}, headers=till
    )

    assert response.get_json() == {"data": [], "next_cursor": None}


def test_transactions_need_the_transactions_scope(session, client, shop):
    writer = f.merchant_headers(session, shop, "purchases:write")

    problem(client.get("/api/v1/transactions", headers=writer), 403, "insufficient_scope")


# Idempotency-Key over HTTP (SPEC 3.1, QUALITY I1).


def test_a_retry_with_the_same_key_replays_status_and_body(session, client, shop, till, now):
    alice = _funded(session, shop)
    ask = {
        "member": card_of(session, alice),
        "code": code_of(session, alice, now[0]),
        "points": 30,
        "external_id": "k-1",
    }
    keyed = {**till, "Idempotency-Key": "till-7-receipt-31"}

    first = client.post(REDEMPTIONS, json=ask, headers=keyed)
    again = client.post(REDEMPTIONS, json=ask, headers=keyed)

    assert first.status_code == again.status_code == 201
    assert again.get_json() == first.get_json()
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert balance(session, alice) == 470


def test_a_refusal_under_a_key_is_replayed_too(session, client, shop, till, now):
    alice = _funded(session, shop, 10)
    ask = {
        "member": card_of(session, alice),
        "code": code_of(session, alice, now[0]),
        "points": 30,
        "external_id": "k-1",
    }
    keyed = {**till, "Idempotency-Key": "k"}

    first = client.post(REDEMPTIONS, json=ask, headers=keyed)
    again = client.post(REDEMPTIONS, json=ask, headers=keyed)

    problem(first, 422, "insufficient_points")
    problem(again, 422, "insufficient_points")
    assert again.headers["Idempotent-Replayed"] == "true"


def test_the_same_key_with_another_body_is_a_conflict(session, client, till):
    card = card_of(session, f.member(session))
    keyed = {**till, "Idempotency-Key": "k-1"}
    client.post(PURCHASES, json=purchase(card, 1000, "r-1"), headers=keyed)

    response = client.post(PURCHASES, json=purchase(card, 2000, "r-2"), headers=keyed)

    problem(response, 409, "idempotency_conflict")
    assert count(session, Transaction) == 1


def test_two_merchants_using_one_key_do_not_collide(session, client, shop, till):
    card, rival = card_of(session, f.member(session)), f.merchant(session, "Rival")
    body = purchase(card, 1000, "r-1")

    mine = client.post(PURCHASES, json=body, headers={**till, "Idempotency-Key": "shared"})
    theirs = client.post(
        PURCHASES,
        json=body,
        headers={**f.merchant_headers(session, rival), "Idempotency-Key": "shared"},
    )

    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert "Idempotent-Replayed" not in theirs.headers
    assert mine.get_json()["transaction"]["id"] != theirs.get_json()["transaction"]["id"]


def test_a_wrong_code_under_a_key_is_counted_once(session, client, shop, till, now):
    alice = _funded(session, shop)
    right = code_of(session, alice, now[0])
    ask = {
        "member": card_of(session, alice),
        "code": f"{(int(right) + 1) % 10**6:06d}",
        "points": 10,
        "external_id": "r",
    }
    keyed = {**till, "Idempotency-Key": "k"}

    for _ in range(3):
        client.post(REDEMPTIONS, json=ask, headers=keyed)

    failures = session.execute(select(Member.code_failures).where(Member.id == alice)).scalar_one()
    assert failures == 1


def test_every_point_moving_route_writes_its_event(session, client, shop, till, now):
    alice = f.member(session)
    # Points from a small purchase: one that took her spend to a tier would write its own event.
    f.purchase(session, alice, shop, 500, amount_minor=100)
    before = count(session, OutboxEvent)

    client.post(PURCHASES, json=purchase(card_of(session, alice), 1000, "r"), headers=till)
    client.post(
        REDEMPTIONS,
        json={
            "member": card_of(session, alice),
            "code": code_of(session, alice, now[0]),
            "points": 10,
            "external_id": "x",
        },
        headers=till,
    )

    assert count(session, OutboxEvent) == before + 2


def test_the_points_routes_are_in_the_openapi_document(client):
    document = client.get("/api/v1/openapi.json").get_json()

    paths = document["paths"]
    for path in (
        "/api/v1/purchases",
        "/api/v1/purchases/batch",
        "/api/v1/purchases/{purchase_id}/refunds",
        "/api/v1/redemptions",
        "/api/v1/redemptions/{redemption_id}/reversal",
        "/api/v1/holds",
        "/api/v1/holds/{hold_id}/capture",
        "/api/v1/holds/{hold_id}/void",
        "/api/v1/transactions",
    ):
        assert path in paths
    batch = paths["/api/v1/purchases/batch"]["post"]
    assert set(batch["requestBody"]["content"]) == {"application/json", "application/x-ndjson"}
    assert batch["security"] == [{"oauth2": ["purchases:write"]}]
    assert paths["/api/v1/redemptions"]["post"]["security"] == [
        {"oauth2": ["redemptions:write"]},
        {"oauth2": ["redeem"]},
    ]


def test_losing_a_race_for_an_external_id_to_another_member_is_a_conflict(
    session, client, till, monkeypatch
):
    """The unique index is the last word: when the check under the member's lock cannot see the
    other purchase yet, the insert fails and the answer is 409, with nothing written."""
    alice, bob = f.member(session), f.member(session)
    client.post(PURCHASES, json=purchase(card_of(session, alice), 1000, "r-1"), headers=till)
    monkeypatch.setattr(purchases, "earlier_transactions", lambda *args, **kwargs: {})

    response = client.post(
        PURCHASES, json=purchase(card_of(session, bob), 1000, "r-1"), headers=till
    )
    after = client.post(PURCHASES, json=purchase(card_of(session, bob), 1000, "r-2"), headers=till)

    problem(response, 409, "idempotency_conflict")
    assert after.status_code == 201
    assert balance(session, bob) == 110


def test_a_purchase_is_answered_exactly_as_its_documented_schema_dumps_it(
    session, client, till, shop
):
    """`purchase_body`, the purchase routes' hand-written answer, says what the documented
    `PurchaseResultSchema` says of the same result: first recorded, welcomed, and replayed."""
    alice = f.member(session)
    first = client.post(PURCHASES, json=purchase(card_of(session, alice)), headers=till)
    again = client.post(PURCHASES, json=purchase(card_of(session, alice)), headers=till)

    assert (first.status_code, again.status_code) == (201, 200)
    assert first.get_json() == again.get_json()
    with tenancy.acting_as(tenancy.SYSTEM, session):
        replay = purchases.record_purchase(
            session,
            merchant_id=shop,
            purchase=purchase(card_of(session, alice)),
            actor=f.TILL,
            now=clock.utcnow(),
        )
    assert replay.replayed
    assert purchase_body(replay) == schemas.PurchaseResultSchema().dump(replay)
    assert purchase_body(replay) == first.get_json()


@pytest.mark.both_backends
def test_a_premium_year_multiplies_purchases_made_within_it_single_and_in_a_batch(
    session, client, shop, till, now
):
    """SPEC 2, paid membership: the year's multiplier (x1.5 by default) adds operator-funded
    points to what a purchase made within the year earns; one made before it earns none."""
    from coalition import economics
    from coalition.members import premium

    alice = f.member(session)
    card = card_of(session, alice)
    paid_at = now[0] - timedelta(days=1)
    before = paid_at - timedelta(hours=1)
    premium.paid_year(session, alice, paid_at, economics.DEFAULT_PREMIUM, "EUR", "pi_test")

    single = client.post(PURCHASES, json=purchase(card, 2000, "p-1"), headers=till)
    batch = client.post(
        f"{PURCHASES}/batch",
        json=[
            purchase(card, 2000, "p-2", occurred_at=before.isoformat()),
            purchase(card, 2000, "p-3", occurred_at=(paid_at + timedelta(hours=1)).isoformat()),
        ],
        headers=till,
    )

    assert single.status_code == 201, single.get_json()
    # 20 base points; the premium year adds 20 x 0.5 = 10, paid by the operator.
    assert single.get_json()["transaction"]["breakdown"]["premium"] == 10
    lines = batch.get_json()["results"]
    premiums = [line["body"]["transaction"]["breakdown"]["premium"] for line in lines]
    assert premiums == [0, 10]
