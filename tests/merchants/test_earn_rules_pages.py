"""The portal's earn rules, `/portal/earn-rules`, and the operator's budget form on its merchant
page in `/ops`: the rules in force and their versions, a change saved as a new version (refused
with clear errors by the API's own schema), the preview of a sample basket computed by the
purchase's code, the cap and what is left of it, and nothing of another merchant's rules."""

from __future__ import annotations

import json
from datetime import timedelta

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from coalition import clock
from merchants import budgets, purchases, rules
from merchants.models import Merchant
from tests import factories as f
from tests.merchants.test_portal_pages import _merchant, _post, _sign_in, _text

PAGE = "/portal/earn-rules"


def _rules(**extra: object) -> dict[str, object]:
    return {
        "base_rate": "1",
        "category_multipliers": "coffee = 2",
        "max_points_per_purchase": "",
        "campaigns": "[]",
        "stamp_cards": "[]",
        **extra,
    }


def test_a_merchant_changes_its_rules_and_sees_the_versions(
    client: FlaskClient, session: Session
) -> None:
    shop = _merchant(session, "shop@example.org")
    _sign_in(client, "shop@example.org")
    start = clock.utcnow() - timedelta(days=1)
    campaigns = [
        {
            "name": "Coffee week",
            "multiplier": "1.5",
            "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(days=7)).isoformat(),
            "categories": ["coffee"],
        }
    ]

    first = client.get(PAGE)
    saved = _post(client, PAGE, PAGE, **_rules(campaigns=json.dumps(campaigns)))

    assert "Version 1" in _text(first.get_data(as_text=True))
    assert saved.status_code == 303
    page = _text(client.get(PAGE).get_data(as_text=True))
    assert "Version 2 of your earn rules is in force" in page
    assert "Coffee week" in page
    found = rules.in_force_at(session, shop, clock.utcnow())
    assert found.version == 2
    assert found.document["category_multipliers"] == {"coffee": "2"}


def test_bad_rules_are_refused_with_the_schemas_errors_and_change_nothing(
    client: FlaskClient, session: Session
) -> None:
    shop = _merchant(session, "shop@example.org")
    _sign_in(client, "shop@example.org")
    backwards = [
        {
            "name": "Oops",
            "multiplier": "2",
            "starts_at": "2026-12-08T00:00:00+00:00",
            "ends_at": "2026-12-01T00:00:00+00:00",
        }
    ]

    not_json = _post(client, PAGE, PAGE, **_rules(stamp_cards="[{"))
    ends_first = _post(client, PAGE, PAGE, **_rules(campaigns=json.dumps(backwards)))
    too_high = _post(client, PAGE, PAGE, **_rules(base_rate="50"))
    float_rate = _post(
        client,
        PAGE,
        PAGE,
        **_rules(
            campaigns='[{"name": "F", "multiplier": 1.5, "starts_at": "2026-12-01T00:00:00Z",'
            ' "ends_at": "2026-12-02T00:00:00Z"}]'
        ),
    )

    assert not_json.status_code == 422
    assert "This is not valid JSON." in _text(not_json.get_data(as_text=True))
    assert "0.ends_at: must be after starts_at" in _text(ends_first.get_data(as_text=True))
    assert "must be between 0.5 and 10" in _text(too_high.get_data(as_text=True))
    assert "0.multiplier: must be a decimal in a string" in _text(float_rate.get_data(as_text=True))
    assert rules.in_force_at(session, shop, clock.utcnow()).version == 1


def test_the_preview_shows_what_a_basket_earns_as_a_purchase_would(
    client: FlaskClient, session: Session
) -> None:
    shop = _merchant(session, "shop@example.org")
    rules.put(
        session,
        merchant_id=shop,
        document={
            "base_rate": "1",
            "category_multipliers": {"coffee": "2"},
            "campaigns": [],
            "stamp_cards": [{"name": "Card", "category": "cake", "buy": 2, "reward": 30}],
        },
        actor_id=None,
        now=clock.utcnow(),
    )
    session.commit()
    _sign_in(client, "shop@example.org")

    response = client.get(
        PAGE,
        query_string={"amount": "20.00", "items": "coffee 12.00 3\ncake 8.00 2", "tier": "Gold"},
    )

    page = _text(response.get_data(as_text=True))
    assert response.status_code == 200
    # 12 x 2 + 8 = 32 base, one reward of 30 (two cakes), Gold x1.5 on 32: 16.
    assert "earns 78 points now" in page
    assert "Base (rate and category multipliers) 32" in page
    assert "Stamp cards (a new card) 30" in page
    assert "Tier bonus 16" in page
    # The same basket as a purchase earns the same.
    basket = {
        "amount": 2000,
        "currency": "EUR",
        "items": [
            {"sku": "c", "category": "coffee", "amount": 1200, "quantity": 3},
            {"sku": "k", "category": "cake", "amount": 800, "quantity": 2},
        ],
    }
    terms = purchases.economics.terms_at(clock.utcnow(), shop, session)
    in_force = rules.in_force_at(session, shop, clock.utcnow()).rules
    assert purchases.earned_for(basket, in_force, terms, "Gold", {}, clock.utcnow()).total == 78

    wrong = client.get(
        PAGE, query_string={"amount": "20.00", "items": "coffee 5.00", "tier": "Gold"}
    )
    assert "must add up to the basket" in _text(wrong.get_data(as_text=True))


def test_the_portal_shows_the_cap_and_what_is_left(client: FlaskClient, session: Session) -> None:
    shop = _merchant(session, "shop@example.org")
    public_id = session.execute(select(Merchant.public_id).where(Merchant.id == shop)).scalar_one()
    budgets.set_cap(session, public_id, 500, clock.utcnow())
    card = f.member(session)
    from tests.merchants.api.test_earn_rules import card_of

    purchases.record_purchase(
        session,
        merchant_id=shop,
        purchase={
            "member": card_of(session, card),
            "amount": 12000,
            "currency": "EUR",
            "external_id": "r-1",
        },
        actor=f.TILL,
        now=clock.utcnow(),
    )
    session.commit()
    _sign_in(client, "shop@example.org")

    page = _text(client.get(PAGE).get_data(as_text=True))

    assert "Cap 500 Issued this month 120 Left 380" in page


def test_a_merchant_sees_only_its_own_rules(client: FlaskClient, session: Session) -> None:
    mine = _merchant(session, "mine@example.org", name="Mine")
    theirs = _merchant(session, "theirs@example.org", name="Theirs")
    rules.put(
        session,
        merchant_id=theirs,
        document={
            "base_rate": "3",
            "campaigns": [],
            "stamp_cards": [{"name": "Secret card", "category": "tea", "buy": 3, "reward": 9}],
        },
        actor_id=None,
        now=clock.utcnow(),
    )
    session.commit()
    _sign_in(client, "mine@example.org")

    page = _text(client.get(PAGE).get_data(as_text=True))

    assert "Secret card" not in page
    assert rules.in_force_at(session, mine, clock.utcnow()).version == 1


# The operator's cap, on its merchant page in /ops.


def test_finance_staff_set_a_merchants_cap_in_the_console(
    client: FlaskClient, session: Session
) -> None:
    from coalition import audit
    from tests.ops_helpers import csrf_token, sign_in_as

    shop = _merchant(session, "shop@example.org")
    public_id = session.execute(select(Merchant.public_id).where(Merchant.id == shop)).scalar_one()
    session.commit()
    staff = sign_in_as(client, session, "finance")
    page = f"/ops/merchants/{public_id}"

    before = client.get(page).get_data(as_text=True)
    set_ = client.post(
        f"{page}/budget",
        data={"monthly_issuance_cap": "2500", "csrf_token": csrf_token(client, page)},
    )
    bad = client.post(
        f"{page}/budget",
        data={"monthly_issuance_cap": "-5", "csrf_token": csrf_token(client, page)},
    )

    assert "No cap" in _text(before)
    assert set_.status_code == 303
    assert "0 of 2500 merchant-funded points issued" in _text(
        client.get(page).get_data(as_text=True)
    )
    assert bad.status_code == 422
    assert budgets.usage(session, shop, clock.utcnow()).monthly_issuance_cap == 2500
    [event] = audit.events(session, action="merchant.budget").rows
    assert (event["actor_label"], event["after"]) == (staff.email, {"monthly_issuance_cap": 2500})


def test_support_staff_cannot_set_a_cap(client: FlaskClient, session: Session) -> None:
    from tests.ops_helpers import csrf_token, sign_in_as

    shop = _merchant(session, "shop@example.org")
    public_id = session.execute(select(Merchant.public_id).where(Merchant.id == shop)).scalar_one()
    session.commit()
    sign_in_as(client, session, "support")
    page = f"/ops/merchants/{public_id}"

    refused = client.post(
        f"{page}/budget", data={"monthly_issuance_cap": "1", "csrf_token": csrf_token(client, page)}
    )

    assert refused.status_code == 403
    assert budgets.usage(session, shop, clock.utcnow()).monthly_issuance_cap is None
