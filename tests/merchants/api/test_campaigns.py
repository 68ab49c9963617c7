"""Targeted campaigns (issue 16): a campaign that targets a segment, regions, birthdays or lapsed
customers, a pilot before it goes wide, and a control group held out; the campaign's report of
its targeted group against its control group. Every target uses only members whose latest
profiling consent is granted."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from coalition import clock
from coalition.ledger.models import Transaction
from coalition.members.models import MemberAttributes
from coalition.privacy.models import Consent
from coalition.segments.models import segment_members, segments
from merchants import rules, targeting
from merchants.earning import Rules
from merchants.models import CampaignExposure, EarnRulesVersion
from tests import factories as f
from tests.merchants.api.test_earn_rules import card_of, headers, problem

RULES = "/api/v1/earn-rules"
PURCHASES = "/api/v1/purchases"
BATCH = "/api/v1/purchases/batch"
NOON = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


@pytest.fixture
def now(monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    moment = [NOON]
    monkeypatch.setattr(clock, "utcnow", lambda: moment[0])
    return moment


@pytest.fixture
def shop(session) -> int:
    return f.merchant(session, "Bakery")


@pytest.fixture
def till(session, shop, now) -> dict[str, str]:
    return headers(session, shop)


def campaign(**extra: Any) -> dict[str, Any]:
    """A campaign doubling the base points, running 60 days either side of NOON."""
    return {
        "name": "Double",
        "multiplier": "2",
        "starts_at": (NOON - timedelta(days=60)).isoformat(),
        "ends_at": (NOON + timedelta(days=60)).isoformat(),
        **extra,
    }


def set_rules(client, till, *campaigns: dict[str, Any]) -> Any:
    response = client.put(
        RULES, json={"base_rate": "1", "campaigns": list(campaigns)}, headers=till
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def member(
    session,
    *,
    consent: bool | None = True,
    region: str | None = None,
    birth_date: date | None = None,
) -> int:
    """A member, with its attributes and its latest profiling consent (None: never asked)."""
    member_id = f.member(session)
    if region is not None or birth_date is not None:
        session.execute(
            insert(MemberAttributes).values(
                member_id=member_id, region=region, birth_date=birth_date, updated_at=NOON
            )
        )
    if consent is not None:
        give(session, member_id, consent)
    return member_id


def give(session, member_id: int, granted: bool) -> None:
    session.execute(
        insert(Consent).values(
            member_id=member_id,
            purpose="profiling",
            granted=granted,
            text_version="1",
            source="me",
            created_at=NOON - timedelta(days=100),
        )
    )


def segment(session, merchant_id: int | None, public_id: str, *members: int) -> str:
    found = session.execute(
        insert(segments)
        .values(
            public_id=public_id,
            merchant_id=merchant_id,
            name=f"Segment {public_id}",
            definition={},
            member_count=len(members),
            created_at=NOON,
            updated_at=NOON,
        )
        .returning(segments.c.id)
    ).scalar_one()
    for member_id in members:
        session.execute(insert(segment_members).values(segment_id=found, member_id=member_id))
    return public_id


def buy(
    client,
    till,
    session,
    member_id: int,
    external_id: str,
    *,
    amount: int = 1000,
    at: datetime | None = None,
    store: str | None = None,
) -> dict[str, Any]:
    """A purchase of `amount` (10.00 EUR: 10 base points); its breakdown."""
    body: dict[str, Any] = {
        "member": card_of(session, member_id),
        "amount": amount,
        "currency": "EUR",
        "external_id": external_id,
    }
    if at is not None:
        body["occurred_at"] = at.isoformat()
    if store is not None:
        body["store"] = store
    response = client.post(PURCHASES, json=body, headers=till)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["transaction"]["breakdown"]


def bonus(client, till, session, member_id: int, external_id: str, **kwargs: Any) -> int:
    breakdown = buy(client, till, session, member_id, external_id, **kwargs)
    assert breakdown["base"] == kwargs.get("amount", 1000) // 100
    return breakdown["campaign"]


# Segments.


@pytest.mark.both_backends
def test_a_segment_campaign_rewards_its_members_who_allow_profiling_and_no_one_else(
    client, session, shop, till, now
):
    inside = member(session)
    no_consent = member(session, consent=None)
    withdrew = member(session)
    give(session, withdrew, False)  # the latest row: consent withdrawn
    outside = member(session)
    segment(session, shop, "seg_regulars", inside, no_consent, withdrew)
    set_rules(client, till, campaign(segment="seg_regulars"))

    assert bonus(client, till, session, inside, "r1") == 10
    assert bonus(client, till, session, no_consent, "r2") == 0
    assert bonus(client, till, session, withdrew, "r3") == 0
    assert bonus(client, till, session, outside, "r4") == 0


@pytest.mark.both_backends
def test_a_campaign_cannot_target_another_merchants_or_the_operators_segment(
    client, session, shop, till, now
):
    other = f.merchant(session, "Butcher")
    segment(session, other, "seg_theirs")
    segment(session, None, "seg_coalition")
    before = session.execute(select(func.count()).select_from(EarnRulesVersion)).scalar()

    for public_id in ("seg_theirs", "seg_coalition", "seg_nowhere"):
        body = {"base_rate": "1", "campaigns": [campaign(segment=public_id)]}
        refused = problem(client.put(RULES, json=body, headers=till), 422, "validation_error")
        assert refused["errors"] == {"campaigns": {"0": {"segment": ["no such segment of yours"]}}}

    after = session.execute(select(func.count()).select_from(EarnRulesVersion)).scalar()
    assert after == before


# Regions.


@pytest.mark.both_backends
def test_a_region_campaign_rewards_members_of_its_regions(client, session, shop, till, now):
    north = member(session, region="North")
    south = member(session, region="South")
    north_no_consent = member(session, region="North", consent=False)
    no_region = member(session)
    set_rules(client, till, campaign(regions=["North", "East"]))

    assert bonus(client, till, session, north, "g1") == 10
    assert bonus(client, till, session, south, "g2") == 0
    assert bonus(client, till, session, north_no_consent, "g3") == 0
    assert bonus(client, till, session, no_region, "g4") == 0


@pytest.mark.both_backends
def test_segment_and_regions_together_need_both(client, session, shop, till, now):
    both = member(session, region="North")
    wrong_region = member(session, region="South")
    segment(session, shop, "seg_a", both, wrong_region)
    set_rules(client, till, campaign(segment="seg_a", regions=["North"]))

    assert bonus(client, till, session, both, "b1") == 10
    assert bonus(client, till, session, wrong_region, "b2") == 0


# Birthdays.


@pytest.mark.both_backends
def test_a_birthday_campaign_rewards_a_week_either_side_of_the_birthday(
    client, session, shop, till, now
):
    # NOON is 15 June, noon UTC: the same business day in the coalition's zone.
    day = clock.business_date(NOON, "UTC")
    assert day == date(2026, 6, 15)
    seven_after = member(session, birth_date=date(1990, 6, 8))
    seven_before = member(session, birth_date=date(1985, 6, 22))
    eight_after = member(session, birth_date=date(1990, 6, 7))
    eight_before = member(session, birth_date=date(1990, 6, 23))
    no_consent = member(session, birth_date=date(1990, 6, 15), consent=False)
    no_birth_date = member(session)
    set_rules(client, till, campaign(kind="birthday"))

    assert bonus(client, till, session, seven_after, "d1") == 10
    assert bonus(client, till, session, seven_before, "d2") == 10
    assert bonus(client, till, session, eight_after, "d3") == 0
    assert bonus(client, till, session, eight_before, "d4") == 0
    assert bonus(client, till, session, no_consent, "d5") == 0
    assert bonus(client, till, session, no_birth_date, "d6") == 0


def test_the_birthday_window_crosses_the_new_year_and_a_leap_day():
    assert targeting.near_birthday(date(2027, 1, 3), date(1990, 12, 28))
    assert targeting.near_birthday(date(2026, 12, 28), date(1990, 1, 3))
    assert not targeting.near_birthday(date(2027, 1, 5), date(1990, 12, 28))
    # 29 February is the 28th in 2027: 7 March is 7 days on, 8 March 8.
    assert targeting.near_birthday(date(2027, 3, 7), date(2000, 2, 29))
    assert not targeting.near_birthday(date(2027, 3, 8), date(2000, 2, 29))


# Win-back.


@pytest.mark.both_backends
def test_a_win_back_campaign_rewards_the_first_purchase_after_exactly_n_days_or_more(
    client, session, shop, till, now
):
    back = member(session)
    too_soon = member(session)
    newcomer = member(session)
    no_consent = member(session, consent=False)
    set_rules(client, till, campaign(kind="win_back", lapsed_days=30))
    last = NOON - timedelta(days=30)
    for member_id, receipt in ((back, "w0"), (too_soon, "s0"), (no_consent, "n0")):
        buy(client, till, session, member_id, receipt, at=last)

    assert bonus(client, till, session, back, "w1") == 10  # exactly 30 days on
    assert bonus(client, till, session, back, "w2") == 0  # bought just now: not lapsed
    assert bonus(client, till, session, too_soon, "s1", at=NOON - timedelta(seconds=1)) == 0
    assert bonus(client, till, session, newcomer, "c1") == 0  # never bought here before
    assert bonus(client, till, session, no_consent, "n1") == 0


@pytest.mark.both_backends
def test_a_batch_counts_its_earlier_lines_for_a_win_back(client, session, shop, till, now):
    back = member(session)
    set_rules(client, till, campaign(kind="win_back", lapsed_days=30))
    buy(client, till, session, back, "w0", at=NOON - timedelta(days=45))
    card = card_of(session, back)
    lines = [
        {"member": card, "amount": 1000, "currency": "EUR", "external_id": f"b{n}"} for n in (1, 2)
    ]

    response = client.post(BATCH, json=lines, headers=till)

    assert response.status_code == 200, response.get_json()
    results = response.get_json()["results"]
    assert [r["status"] for r in results] == [201, 201]
    assert [r["body"]["transaction"]["breakdown"]["campaign"] for r in results] == [10, 0]


def test_purchases_before_the_look_back_count_for_a_win_back(client, session, shop, till, now):
    back = member(session)
    set_rules(client, till, campaign(kind="win_back", lapsed_days=30))
    buy(client, till, session, back, "w0", at=NOON - timedelta(days=200))

    assert bonus(client, till, session, back, "w1") == 10


# Pilots.


@pytest.mark.both_backends
def test_a_pilot_runs_at_its_stores_until_it_goes_wide(client, session, shop, till, now):
    buyer = member(session, consent=None)  # a pilot targets stores, not members
    until = NOON + timedelta(days=1)
    set_rules(
        client,
        till,
        campaign(
            stores=["Main St", "Mall", "Station"],
            pilot={"stores": ["Main St"], "until": until.isoformat()},
        ),
    )

    assert bonus(client, till, session, buyer, "p1", store="Main St") == 10
    assert bonus(client, till, session, buyer, "p2", store="Mall") == 0
    now[0] = until
    assert bonus(client, till, session, buyer, "p3", store="Mall") == 10
    assert bonus(client, till, session, buyer, "p4", store="Elsewhere") == 0


def test_a_pilot_of_a_campaign_at_every_store_goes_wide_to_every_store(
    client, session, shop, till, now
):
    buyer = member(session, consent=None)
    until = NOON + timedelta(hours=1)
    set_rules(client, till, campaign(pilot={"stores": ["Main St"], "until": until.isoformat()}))

    assert bonus(client, till, session, buyer, "p1", store="Mall") == 0
    assert bonus(client, till, session, buyer, "p2") == 0
    now[0] = until
    assert bonus(client, till, session, buyer, "p3", store="Mall") == 10
    assert bonus(client, till, session, buyer, "p4") == 10


# Control groups.


def split(merchant_id: int, name: str, ids: list[int], percent: int) -> tuple[list[int], list[int]]:
    held = [m for m in ids if targeting.held_out(merchant_id, name, m, percent)]
    return [m for m in ids if m not in held], held


def test_the_control_group_is_a_stable_hash_of_merchant_campaign_and_member():
    assert targeting.held_out(1, "Double", 7, 50) == targeting.held_out(1, "Double", 7, 50)
    assert not any(targeting.held_out(1, "Double", m, 0) for m in range(200))
    share = sum(targeting.held_out(1, "Double", m, 30) for m in range(1000))
    assert 250 < share < 350
    # Another campaign's name draws another group.
    assert [targeting.held_out(1, "A", m, 50) for m in range(40)] != [
        targeting.held_out(1, "B", m, 50) for m in range(40)
    ]


@pytest.mark.both_backends
def test_members_held_out_get_no_bonus_at_any_purchase_and_are_recorded(
    client, session, shop, till, now
):
    ids = [member(session) for _ in range(8)]
    segment(session, shop, "seg_all", *ids)
    set_rules(client, till, campaign(segment="seg_all", control_percent=50))
    reached, held = split(shop, "Double", ids, 50)
    assert reached and held

    for round_ in (1, 2):
        for member_id in ids:
            expected = 0 if member_id in held else 10
            assert bonus(client, till, session, member_id, f"c{round_}-{member_id}") == expected

    rows = session.execute(
        select(CampaignExposure.member_id, CampaignExposure.held_out, CampaignExposure.campaign)
    ).all()
    assert sorted(rows) == sorted((m, m in held, "Double") for m in ids for _ in (1, 2))


def test_no_exposure_is_written_for_an_untargeted_campaign(client, session, shop, till, now):
    buyer = member(session)
    set_rules(client, till, campaign())

    assert bonus(client, till, session, buyer, "u1") == 10
    assert session.execute(select(func.count()).select_from(CampaignExposure)).scalar() == 0


# The report.


def report(client, till, name: str = "Double") -> dict[str, Any]:
    response = client.get(f"{RULES}/campaigns/{name}/report", headers=till)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


@pytest.mark.both_backends
def test_a_segment_campaigns_report_compares_its_targeted_and_control_groups(
    client, session, shop, till, now
):
    ids = [member(session) for _ in range(16)]
    no_consent = member(session, consent=False)
    segment(session, shop, "seg_all", *ids, no_consent)
    set_rules(client, till, campaign(segment="seg_all", control_percent=50))
    reached, held = split(shop, "Double", ids, 50)
    assert len(reached) >= 2 and len(held) >= 2
    # Two reached members buy: 10.00 and 25.50 then 4.50; one held-out member buys 8.00.
    buy(client, till, session, reached[0], "t1", amount=1000)
    buy(client, till, session, reached[1], "t2", amount=2550)
    buy(client, till, session, reached[1], "t3", amount=450)
    buy(client, till, session, held[0], "h1", amount=800)
    buy(client, till, session, no_consent, "x1", amount=5000)  # in no group
    # A purchase before the campaign's window does not count.
    buy(client, till, session, reached[0], "t0", amount=9900, at=NOON - timedelta(days=61))

    body = report(client, till)

    assert body["basis"] == "targeted_now"
    assert body["currency"] == "EUR"
    assert body["window_start"] == (NOON - timedelta(days=60)).isoformat()
    assert body["window_end"] == (NOON + timedelta(days=60)).isoformat()
    assert body["as_of"] == NOON.isoformat()
    assert body["campaign"]["control_percent"] == 50
    # Points: each reached purchase earns double (10+10, 25+25, 4+5 by the largest
    # remainder is 4.5+4.5 = 9), the held-out purchase 8 base; plus the welcome bonus.
    welcome = _welcome(session)
    assert body["targeted"] == {
        "members": len(reached),
        "buyers": 2,
        "purchases": 3,
        "sales": "40.00",
        "points": 20 + 51 + 9 + 2 * welcome,
        "average_basket": "13.33",
    }
    assert body["control"] == {
        "members": len(held),
        "buyers": 1,
        "purchases": 1,
        "sales": "8.00",
        "points": 8 + welcome,
        "average_basket": "8.00",
    }
    per_member = _cents(40 / len(reached) - 8 / len(held))
    rate = round((2 / len(reached) - 1 / len(held)) * 100, 2)
    assert body["uplift"] == {
        "sales_per_member": per_member,
        "buyer_rate_points": f"{rate:.2f}",
    }


def _welcome(session) -> int:
    return (
        session.execute(select(func.max(Transaction.breakdown["welcome"].as_integer()))).scalar()
        or 0
    )


def _cents(value: float) -> str:
    from decimal import ROUND_HALF_EVEN, Decimal

    return str(Decimal(repr(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN))


@pytest.mark.both_backends
def test_a_win_back_report_counts_the_members_reached_or_held_out_at_a_purchase(
    client, session, shop, till, now
):
    ids = [member(session) for _ in range(12)]
    set_rules(client, till, campaign(kind="win_back", lapsed_days=30, control_percent=50))
    reached, held = split(shop, "Double", ids, 50)
    lapsed = [*reached[:2], *held[:2]]
    for member_id in lapsed:
        buy(client, till, session, member_id, f"old-{member_id}", at=NOON - timedelta(days=70))
    for member_id in lapsed:
        buy(client, till, session, member_id, f"new-{member_id}", amount=2000)
    buy(client, till, session, reached[0], "again", amount=500)
    buy(client, till, session, reached[2], "first", amount=700)  # never lapsed: in no group

    body = report(client, till)

    assert body["basis"] == "exposures"
    assert body["targeted"]["members"] == 2
    assert body["targeted"]["buyers"] == 2
    assert body["targeted"]["purchases"] == 3
    assert body["targeted"]["sales"] == "45.00"
    assert body["targeted"]["average_basket"] == "15.00"
    assert body["control"]["members"] == 2
    assert body["control"]["purchases"] == 2
    assert body["control"]["sales"] == "40.00"
    assert body["uplift"] == {"sales_per_member": "2.50", "buyer_rate_points": "0.00"}


def test_an_untargeted_or_unknown_campaign_has_no_report(client, session, shop, till, now):
    set_rules(client, till, campaign())

    problem(client.get(f"{RULES}/campaigns/Double/report", headers=till), 404, "not_found")
    problem(client.get(f"{RULES}/campaigns/Nothing/report", headers=till), 404, "not_found")


def test_a_merchant_cannot_read_another_merchants_campaign_report(client, session, shop, till, now):
    other = f.merchant(session, "Butcher")
    their_till = headers(session, other)
    ids = [member(session) for _ in range(3)]
    segment(session, other, "seg_theirs", *ids)
    set_rules(client, their_till, campaign(name="Theirs", segment="seg_theirs"))

    problem(client.get(f"{RULES}/campaigns/Theirs/report", headers=till), 404, "not_found")
    assert report(client, their_till, "Theirs")["targeted"]["members"] == 3


# Bad input, and old documents.


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"segment": "seg_x", "control_percent": 51}, "control_percent"),
        ({"segment": "seg_x", "control_percent": -1}, "control_percent"),
        ({"control_percent": 10}, "control_percent"),
        ({"kind": "win_back"}, "lapsed_days"),
        ({"kind": "birthday", "lapsed_days": 30}, "lapsed_days"),
        ({"kind": "win_back", "lapsed_days": 0}, "lapsed_days"),
        ({"kind": "anniversary"}, "kind"),
        ({"regions": []}, "regions"),
        (
            {"stores": ["Mall"], "pilot": {"stores": ["Main St"], "until": NOON.isoformat()}},
            "pilot",
        ),
        ({"pilot": {"stores": ["Main St"], "until": "2030-01-01T00:00:00+00:00"}}, "pilot"),
        ({"pilot": {"stores": [], "until": NOON.isoformat()}}, "pilot"),
        ({"pilot": {"stores": ["Main St"]}}, "pilot"),
    ],
)
def test_bad_targeting_is_refused_and_writes_nothing(
    client, session, shop, till, now, extra, field
):
    body = {"base_rate": "1", "campaigns": [campaign(**extra)]}

    refused = problem(client.put(RULES, json=body, headers=till), 422, "validation_error")

    assert field in refused["errors"]["campaigns"]["0"], refused["errors"]
    assert session.execute(select(func.count()).select_from(EarnRulesVersion)).scalar() == 0


def test_a_document_written_before_targeting_still_loads_with_its_defaults(
    client, session, shop, till, now
):
    buyer = member(session)
    old = {
        "base_rate": "1",
        "category_multipliers": {},
        "campaigns": [
            {
                "name": "Old",
                "multiplier": "2",
                "starts_at": (NOON - timedelta(days=1)).isoformat(),
                "ends_at": (NOON + timedelta(days=1)).isoformat(),
                "categories": None,
                "stores": None,
            }
        ],
        "max_points_per_purchase": None,
        "stamp_cards": [],
    }
    session.execute(
        insert(EarnRulesVersion).values(
            merchant_id=shop,
            version=2,
            effective_from=NOON - timedelta(days=1),
            document=old,
            actor_id=None,
            created_at=NOON,
        )
    )
    parsed = Rules.from_document(old, 2).campaigns[0]
    assert (parsed.kind, parsed.targeted, parsed.control_percent, parsed.pilot_until) == (
        "standard",
        False,
        0,
        None,
    )

    shown = client.get(RULES, headers=till).get_json()["campaigns"][0]
    assert shown == {**old["campaigns"][0], **rules.TARGETING_DEFAULTS}
    assert bonus(client, till, session, buyer, "o1") == 10


def test_the_targeting_keys_are_stored_as_given(client, session, shop, till, now):
    segment(session, shop, "seg_a")
    until = NOON + timedelta(days=1)
    body = set_rules(
        client,
        till,
        campaign(
            segment="seg_a",
            regions=["North"],
            stores=["Main St", "Mall"],
            pilot={"stores": ["Main St"], "until": until.isoformat()},
            control_percent=20,
        ),
    )

    stored = body["campaigns"][0]
    assert stored["kind"] == "standard"
    assert stored["segment"] == "seg_a"
    assert stored["regions"] == ["North"]
    assert stored["pilot"] == {"stores": ["Main St"], "until": until.isoformat()}
    assert stored["control_percent"] == 20
    assert stored["lapsed_days"] is None


def test_a_purchase_reads_no_member_context_without_a_targeted_campaign_in_force(
    client, session, shop, till, now, monkeypatch
):
    buyer = member(session)
    segment(session, shop, "seg_a", buyer)
    later = NOON + timedelta(days=90)  # the targeted campaign starts after NOON
    set_rules(
        client,
        till,
        campaign(),
        campaign(
            name="Later",
            segment="seg_a",
            starts_at=later.isoformat(),
            ends_at=(later + timedelta(days=1)).isoformat(),
        ),
        campaign(name="Mall only", regions=["North"], stores=["Mall"]),
    )

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("member context read")

    monkeypatch.setattr(targeting.Context, "load", refuse)

    assert bonus(client, till, session, buyer, "n1", store="Main St") == 10
    assert bonus(client, till, session, buyer, "n2") == 10


def test_a_targeted_campaign_on_other_categories_leaves_no_exposure(
    client, session, shop, till, now
):
    buyer = member(session, region="North")
    set_rules(client, till, campaign(regions=["North"], categories=["cake"], control_percent=50))
    body = {
        "member": card_of(session, buyer),
        "amount": 1000,
        "currency": "EUR",
        "external_id": "k1",
        "items": [{"sku": "tea", "category": "tea", "amount": 1000}],
    }

    response = client.post(PURCHASES, json=body, headers=till)

    assert response.status_code == 201, response.get_json()
    assert response.get_json()["transaction"]["breakdown"]["campaign"] == 0
    assert session.execute(select(func.count()).select_from(CampaignExposure)).scalar() == 0


def test_a_batch_records_its_exposures(client, session, shop, till, now):
    ids = [member(session, region="North") for _ in range(6)]
    set_rules(client, till, campaign(regions=["North"], control_percent=50))
    reached, held = split(shop, "Double", ids, 50)
    assert reached and held
    lines = [
        {"member": card_of(session, m), "amount": 1000, "currency": "EUR", "external_id": f"x{m}"}
        for m in ids
    ]

    response = client.post(BATCH, json=lines, headers=till)

    bonuses = [
        r["body"]["transaction"]["breakdown"]["campaign"] for r in response.get_json()["results"]
    ]
    assert bonuses == [0 if m in held else 10 for m in ids]
    rows = session.execute(select(CampaignExposure.member_id, CampaignExposure.held_out)).all()
    assert sorted(rows) == sorted((m, m in held) for m in ids)
