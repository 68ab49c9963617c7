"""The earn arithmetic (SPEC 2, Earn rules), `merchants.earning.earn`, on its own: what each rule
adds, floored once per purchase, the parts adding up to the total, never a float."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from coalition import economics
from merchants.earning import Basket, Campaign, Item, Rules, StampCard, earn

T = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
EUR = 100
PARTS = ("base", "campaign", "stamp", "tier", "premium")


def _exact_total(rules: Rules, basket: Basket, tier: Decimal, premium: Decimal | None) -> Decimal:
    """The same rules computed another way, without a cap: every line's points exactly."""
    lines = basket.items or (Item(amount=basket.amount),)
    total = Decimal(0)
    for line in lines:
        rate = rules.base_rate * (
            rules.category_multipliers.get(line.category, Decimal(1)) if line.category else 1
        )
        boost = sum(
            (
                c.multiplier - 1
                for c in rules.campaigns
                if c.applies(T, basket.store, line.category)
            ),
            Decimal(0),
        )
        extra = tier - 1 + (premium - 1 if premium else 0)
        total += Decimal(line.amount) / EUR * rate * (1 + boost) * (1 + extra)
    return total


def test_a_plain_purchase_earns_what_the_base_rate_always_gave():
    rules = Rules(base_rate=Decimal("1.5"))

    earned = earn(rules, Basket(1999, T), minor_units=EUR)

    assert earned.breakdown() == {"base": 29, "campaign": 0, "stamp": 0, "tier": 0, "premium": 0}
    assert earned.total == economics.base_points(1999, Decimal("1.5"), economics.DEFAULT_TERMS)


def test_a_basket_of_coffee_and_cake_with_every_rule():
    """The worked purchase: 20.00 EUR, 12.00 of coffee (x2 category, a 1.5x coffee campaign) and
    8.00 of cake, the 10th coffee of a stamp card, a Gold member (x1.5)."""
    rules = Rules(
        base_rate=Decimal("1"),
        category_multipliers={"coffee": Decimal("2")},
        campaigns=(
            Campaign(
                "Coffee week",
                Decimal("1.5"),
                T - timedelta(days=1),
                T + timedelta(days=6),
                categories=frozenset({"coffee"}),
            ),
        ),
        stamp_cards=(StampCard("Coffee card", "coffee", buy=10, reward=50),),
    )
    basket = Basket(
        2000,
        T,
        store="Main St",
        items=(Item(1200, "coffee", quantity=3), Item(800, "cake", quantity=2)),
    )

    earned = earn(
        rules, basket, minor_units=EUR, tier_multiplier=Decimal("1.5"), stamps={"Coffee card": 8}
    )

    # base: 12 x 2 + 8 = 32; campaign: 24 x 0.5 = 12; stamp: 8 + 3 = 11 stamps, one reward of 50
    # (1 carried over); tier: (32 + 12) x 0.5 = 22.
    assert earned.breakdown() == {"base": 32, "campaign": 12, "stamp": 50, "tier": 22, "premium": 0}
    assert earned.stamps == {"Coffee card": 1}
    assert (earned.merchant_funded, earned.operator_funded, earned.total) == (94, 22, 116)


def test_a_campaign_counts_only_in_its_window_its_stores_and_its_categories():
    campaign = Campaign(
        "Double",
        Decimal("2"),
        T,
        T + timedelta(days=1),
        categories=frozenset({"bread"}),
        stores=frozenset({"Main St"}),
    )
    rules = Rules(base_rate=Decimal("1"), campaigns=(campaign,))

    def campaign_points(at: datetime, store: str | None, category: str | None) -> int:
        items = (Item(1000, category),) if category else ()
        return earn(rules, Basket(1000, at, store, items), minor_units=EUR).campaign

    assert campaign_points(T, "Main St", "bread") == 10
    assert campaign_points(T + timedelta(days=1) - timedelta(seconds=1), "Main St", "bread") == 10
    assert campaign_points(T - timedelta(seconds=1), "Main St", "bread") == 0  # not yet
    assert campaign_points(T + timedelta(days=1), "Main St", "bread") == 0  # ends_at is exclusive
    assert campaign_points(T, "Station", "bread") == 0  # another store
    assert campaign_points(T, "Main St", "milk") == 0  # another category
    assert campaign_points(T, "Main St", None) == 0  # no items: no category


def test_the_cap_takes_campaign_points_first_then_base_and_keeps_the_stamps():
    rules = Rules(
        base_rate=Decimal("1"),
        campaigns=(Campaign("Triple", Decimal("3"), T, T + timedelta(days=1)),),
        max_points_per_purchase=100,
        stamp_cards=(StampCard("Card", "coffee", buy=1, reward=30),),
    )
    basket = Basket(10000, T, items=(Item(10000, "coffee"),))

    earned = earn(rules, basket, minor_units=EUR, tier_multiplier=Decimal("2"))

    # 100 base + 200 campaign + 30 stamp, capped to 100: 30 stamp, 70 base, 0 campaign; the tier
    # doubles what the merchant gives (70), operator-funded.
    assert earned.breakdown() == {"base": 70, "campaign": 0, "stamp": 30, "tier": 70, "premium": 0}


def test_a_premium_multiplier_adds_its_own_operator_funded_part():
    rules = Rules(base_rate=Decimal("2"))

    earned = earn(
        rules,
        Basket(1000, T),
        minor_units=EUR,
        tier_multiplier=Decimal("1.25"),
        premium_multiplier=Decimal("1.5"),
    )

    assert earned.breakdown() == {"base": 20, "campaign": 0, "stamp": 0, "tier": 5, "premium": 10}
    assert earned.operator_funded == 15


def test_the_sum_is_floored_once_not_part_by_part():
    # base 0.99 + tier 0.2475 + premium 0.495 = 1.7325: one point, though every part is below 1.
    rules = Rules(base_rate=Decimal("0.99"))

    earned = earn(
        rules,
        Basket(100, T),
        minor_units=EUR,
        tier_multiplier=Decimal("1.25"),
        premium_multiplier=Decimal("1.5"),
    )

    assert earned.total == 1
    assert earned.breakdown() == {"base": 1, "campaign": 0, "stamp": 0, "tier": 0, "premium": 0}


def test_stamps_carry_over_and_several_rewards_come_at_once():
    rules = Rules(base_rate=Decimal("1"), stamp_cards=(StampCard("Card", "tea", 4, 25),))
    basket = Basket(900, T, items=(Item(900, "tea", quantity=9),))

    earned = earn(rules, basket, minor_units=EUR, stamps={"Card": 3})

    assert (earned.stamp, earned.stamps) == (75, {"Card": 0})  # 12 stamps: three rewards


# Property tests.

rates = st.decimals(min_value=Decimal("0.5"), max_value=Decimal("10"), places=4)
multipliers = st.decimals(min_value=Decimal("1"), max_value=Decimal("10"), places=4)
category_multipliers = st.decimals(min_value=Decimal("0"), max_value=Decimal("10"), places=4)
amounts = st.integers(min_value=0, max_value=10**11)
CATEGORIES = ("coffee", "cake", "milk")


@st.composite
def rule_sets(draw: st.DrawFn) -> Rules:
    campaigns = tuple(
        Campaign(
            f"c{i}",
            draw(st.decimals(min_value=Decimal("1.0001"), max_value=Decimal("10"), places=4)),
            T - timedelta(days=draw(st.integers(0, 3))),
            T + timedelta(days=draw(st.integers(-2, 3))),
            categories=draw(st.none() | st.frozensets(st.sampled_from(CATEGORIES), min_size=1)),
            stores=draw(st.none() | st.just(frozenset({"Main St"}))),
        )
        for i in range(draw(st.integers(0, 3)))
    )
    return Rules(
        base_rate=draw(rates),
        category_multipliers=draw(
            st.dictionaries(st.sampled_from(CATEGORIES), category_multipliers)
        ),
        campaigns=tuple(c for c in campaigns if c.ends_at > c.starts_at),
        max_points_per_purchase=draw(st.none() | st.integers(1, 10**6)),
        stamp_cards=tuple(
            StampCard(
                f"s{i}",
                draw(st.sampled_from(CATEGORIES)),
                draw(st.integers(1, 20)),
                draw(st.integers(1, 500)),
            )
            for i in range(draw(st.integers(0, 2)))
        ),
    )


@st.composite
def baskets(draw: st.DrawFn) -> Basket:
    items = draw(
        st.lists(
            st.builds(
                Item,
                amount=st.integers(0, 10**9),
                category=st.sampled_from(CATEGORIES),
                quantity=st.integers(1, 50),
            ),
            max_size=5,
        )
    )
    amount = sum(i.amount for i in items) if items else draw(amounts)
    return Basket(amount, T, draw(st.none() | st.just("Main St")), tuple(items))


@given(
    rule_sets(),
    baskets(),
    multipliers,
    st.none() | multipliers,
    st.dictionaries(st.sampled_from(("s0", "s1")), st.integers(0, 19)),
)
def test_the_parts_are_whole_never_negative_and_add_up_to_the_floor_of_their_sum(
    rules, basket, tier, premium, progress
):
    earned = earn(
        rules,
        basket,
        minor_units=EUR,
        tier_multiplier=tier,
        premium_multiplier=premium,
        stamps=progress,
    )

    parts = earned.breakdown()
    assert all(type(points) is int and points >= 0 for points in parts.values())
    assert sum(parts.values()) == earned.total
    assert all(type(n) is int and n >= 0 for n in earned.stamps.values())
    if rules.max_points_per_purchase is not None:
        assert earned.merchant_funded <= rules.max_points_per_purchase
    if rules.max_points_per_purchase is None and not rules.stamp_cards:
        # Floored once: the floor of the exact sum, computed here another way.
        exact = _exact_total(rules, basket, tier, premium)
        assert earned.total == int(exact // 1)


@given(
    rates, multipliers, st.none() | multipliers, amounts, amounts, st.none() | st.integers(1, 10**6)
)
def test_more_money_never_earns_fewer_points(rate, tier, premium, one, other, cap):
    rules = Rules(base_rate=rate, max_points_per_purchase=cap)
    low, high = sorted((one, other))

    def total(amount: int) -> int:
        return earn(
            rules,
            Basket(amount, T),
            minor_units=EUR,
            tier_multiplier=tier,
            premium_multiplier=premium,
        ).total

    assert total(low) <= total(high)


@given(rates, amounts)
def test_a_plain_purchase_earns_exactly_the_base_points_of_before(rate, amount):
    earned = earn(Rules(base_rate=rate), Basket(amount, T), minor_units=EUR)

    assert (
        earned.total == earned.base == economics.base_points(amount, rate, economics.DEFAULT_TERMS)
    )


@given(rates, st.lists(st.integers(1, 10**6), min_size=1, max_size=4), multipliers)
def test_the_tier_multiplies_base_and_campaign_within_a_point(rate, amounts_of, tier):
    rules = Rules(base_rate=rate)
    items = tuple(Item(a, "coffee") for a in amounts_of)
    basket = Basket(sum(amounts_of), T, items=items)

    plain = earn(rules, basket, minor_units=EUR)
    tiered = earn(rules, basket, minor_units=EUR, tier_multiplier=tier)

    exact_tier = Decimal(sum(amounts_of)) / EUR * rate * (tier - 1)
    assert abs(tiered.tier - exact_tier) < 1
    assert tiered.base in (plain.base, plain.base + 1)


@given(rates, amounts, st.lists(st.integers(0, 10**9), max_size=4))
def test_the_base_rate_alone_earns_what_the_general_arithmetic_gives(rate, amount, lines):
    """Rules of the base rate alone take a short way; a multiplier of 1 on a category nobody
    buys sends the same purchase the long way, which must agree."""
    items = tuple(Item(a, "coffee") for a in lines)
    basket = Basket(sum(lines) if lines else amount, T, items=items)
    plain = Rules(base_rate=rate)
    the_long_way = Rules(base_rate=rate, category_multipliers={"nothing": Decimal(1)})

    assert not the_long_way.plain
    assert earn(plain, basket, minor_units=EUR) == earn(the_long_way, basket, minor_units=EUR)
