"""What a purchase earns (SPEC 2, Earn rules): one pure function, `earn`, used by the purchase
path, the batch and the portal's preview alike. No database, no clock, no float: `Decimal` and
`int` only.

The arithmetic, per purchase:

- Each line (an item; a purchase without items is one line of its whole amount and no
  category) earns `amount / minor units x base_rate x category multiplier` (a category without
  a multiplier: 1): its **base**.
- Each campaign in force at the purchase's `occurred_at` (`starts_at <= occurred_at <
  ends_at`), for the purchase's store (if the campaign names stores) and the line's category (if
  it names categories), adds `base x (multiplier - 1)` of that line: its **campaign** points.
  Campaigns stack by adding their bonuses. A campaign on `pilot` applies only at its pilot
  stores until the pilot's `until`, then at all its stores. A **targeted** campaign (a
  segment, regions, or a `birthday` or `win_back` kind: `merchants.targeting`) applies only to
  a member its `Audience` says it reaches: targeted, and not held out in its control group.
- Each stamp card counts the units (`quantity`, default 1) bought in its category: every `buy`
  stamps collected, with those carried over from earlier purchases, give `reward` points:
  **stamp**. The remainder carries over to the next purchase.
- `max_points_per_purchase` caps the merchant-funded points (base + campaign + stamp): what is
  over it is taken from the campaign first, then the base, then the stamps (a promised reward
  goes last).
- The member's tier adds `(base + campaign) x (tier multiplier - 1)`: **tier**; a premium
  membership likewise `(base + campaign) x (premium multiplier - 1)`: **premium**. Both are
  operator-funded, computed on the merchant's points after its cap.

Every part is exact (a `Decimal`) until the end. The purchase's points are the floor of their
exact sum, once. The whole points are then split between the parts by the largest remainder:
each part gets the floor of its exact value, and the points left (fewer than the number of
parts) go one each to the parts with the largest fractions (ties in the order base, campaign,
stamp, tier, premium), so the parts add up to the total exactly and each is its exact value
floored or rounded up. A plain purchase (base rate only) earns `economics.base_points`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, localcontext
from typing import Any

# Enough digits that no product of an amount (up to 10^11 minor units) and the rules' rates and
# multipliers (4 decimal places each, see merchants.rules) is ever rounded.
PRECISION = 80
PARTS = ("base", "campaign", "stamp", "tier", "premium")
MERCHANT_PARTS = ("base", "campaign", "stamp")
ONE = Decimal(1)


KINDS = ("standard", "birthday", "win_back")


@dataclass(frozen=True)
class Campaign:
    name: str
    multiplier: Decimal
    starts_at: datetime
    ends_at: datetime
    categories: frozenset[str] | None = None
    stores: frozenset[str] | None = None
    # Targeting (SPEC 2, segments and targeted offers; `merchants.targeting`).
    kind: str = "standard"
    segment: str | None = None  # a segment's public id, one of the merchant's own
    regions: frozenset[str] | None = None
    lapsed_days: int | None = None  # `win_back`: days without a purchase here
    # A pilot (decision 310): only at `pilot_stores` before `pilot_until`, then at `stores`.
    pilot_stores: frozenset[str] | None = None
    pilot_until: datetime | None = None
    control_percent: int = 0

    @property
    def targeted(self) -> bool:
        """Whether it reaches only some members (and needs to know who the buyer is)."""
        return self.kind != "standard" or self.segment is not None or self.regions is not None

    def runs_at(self, at: datetime, store: str | None) -> bool:
        """Whether it is in force at `at` in `store`, whatever the basket's lines."""
        if not self.starts_at <= at < self.ends_at:
            return False
        if self.pilot_until is not None and at < self.pilot_until:
            return store in (self.pilot_stores or ())
        return self.stores is None or store in self.stores

    def applies(self, at: datetime, store: str | None, category: str | None) -> bool:
        return self.runs_at(at, store) and (self.categories is None or category in self.categories)


@dataclass(frozen=True)
class Audience:
    """Which targeted campaigns a purchase's member is reached by (`merchants.targeting`): the
    names of those whose target it meets (with its profiling consent), and of those among them
    that hold it out in their control group. Names only: no attribute leaves the query."""

    targeted: frozenset[str] = frozenset()
    held_out: frozenset[str] = frozenset()

    def reaches(self, campaign: Campaign) -> bool:
        return campaign.name in self.targeted and campaign.name not in self.held_out


@dataclass(frozen=True)
class StampCard:
    name: str
    category: str
    buy: int
    reward: int


@dataclass(frozen=True)
class Rules:
    """A version of a merchant's earn rules, parsed (`from_document`)."""

    base_rate: Decimal
    version: int = 1
    category_multipliers: Mapping[str, Decimal] = field(default_factory=dict)
    campaigns: tuple[Campaign, ...] = ()
    max_points_per_purchase: int | None = None
    stamp_cards: tuple[StampCard, ...] = ()

    @property
    def plain(self) -> bool:
        """Whether these rules are the base rate alone."""
        return not (
            self.category_multipliers
            or self.campaigns
            or self.stamp_cards
            or self.max_points_per_purchase is not None
        )

    @classmethod
    def from_document(cls, document: Mapping[str, Any], version: int) -> Rules:
        """The rules of a stored document (`merchants.rules` wrote and validated it)."""
        return cls(
            base_rate=Decimal(document["base_rate"]),
            version=version,
            category_multipliers={
                name: Decimal(value)
                for name, value in (document.get("category_multipliers") or {}).items()
            },
            campaigns=tuple(
                Campaign(
                    name=c["name"],
                    multiplier=Decimal(c["multiplier"]),
                    starts_at=_moment(c["starts_at"]),
                    ends_at=_moment(c["ends_at"]),
                    categories=frozenset(c["categories"]) if c.get("categories") else None,
                    stores=frozenset(c["stores"]) if c.get("stores") else None,
                    # Documents written before targeting have none of these keys.
                    kind=c.get("kind") or "standard",
                    segment=c.get("segment"),
                    regions=frozenset(c["regions"]) if c.get("regions") else None,
                    lapsed_days=c.get("lapsed_days"),
                    pilot_stores=frozenset(c["pilot"]["stores"]) if c.get("pilot") else None,
                    pilot_until=_moment(c["pilot"]["until"]) if c.get("pilot") else None,
                    control_percent=int(c.get("control_percent") or 0),
                )
                for c in document.get("campaigns") or ()
            ),
            max_points_per_purchase=document.get("max_points_per_purchase"),
            stamp_cards=tuple(
                StampCard(s["name"], s["category"], int(s["buy"]), int(s["reward"]))
                for s in document.get("stamp_cards") or ()
            ),
        )


def _moment(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


@dataclass(frozen=True)
class Item:
    amount: int  # minor units: the line's total
    category: str | None = None
    quantity: int = 1
    sku: str | None = None


@dataclass(frozen=True)
class Basket:
    """A purchase as the rules see it: its amount in minor units, when and where, its items."""

    amount: int
    occurred_at: datetime
    store: str | None = None
    items: tuple[Item, ...] = ()

    @classmethod
    def of(cls, purchase: Mapping[str, Any], occurred_at: datetime) -> Basket:
        """A validated purchase (`PurchaseSchema`) as a basket."""
        return cls(
            amount=purchase["amount"],
            occurred_at=occurred_at,
            store=purchase.get("store"),
            items=tuple(
                Item(
                    amount=item["amount"],
                    category=item.get("category"),
                    quantity=item.get("quantity", 1),
                    sku=item.get("sku"),
                )
                for item in purchase.get("items") or ()
            ),
        )


@dataclass(frozen=True)
class Earned:
    """A purchase's points, part by part (integers that add up to `total`), and each stamp
    card's progress after it (only the cards it touched)."""

    base: int
    campaign: int
    stamp: int
    tier: int
    premium: int
    stamps: Mapping[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.base + self.campaign + self.stamp + self.tier + self.premium

    @property
    def merchant_funded(self) -> int:
        return self.base + self.campaign + self.stamp

    @property
    def operator_funded(self) -> int:
        return self.tier + self.premium

    def breakdown(self) -> dict[str, int]:
        return {part: getattr(self, part) for part in PARTS}


def earn(
    rules: Rules,
    basket: Basket,
    *,
    minor_units: int,
    tier_multiplier: Decimal = ONE,
    premium_multiplier: Decimal | None = None,
    stamps: Mapping[str, int] | None = None,
    audience: Audience | None = None,
) -> Earned:
    """What `basket` earns under `rules` (see the module's note). `minor_units`: minor units per
    currency unit (100 for EUR); `stamps`: the member's progress per stamp card (by name) before
    this purchase; `audience`: the targeted campaigns that reach its member (None: none do)."""
    if rules.plain and tier_multiplier == ONE and not premium_multiplier:
        # The base rate alone (most purchases): `economics.base_points`, the same floor.
        return Earned(int(Decimal(basket.amount) * rules.base_rate // minor_units), 0, 0, 0, 0)
    with localcontext(prec=PRECISION):
        lines = basket.items or (Item(amount=basket.amount),)
        base = campaign = Decimal(0)
        for line in lines:
            multiplier = (
                ONE if line.category is None else rules.category_multipliers.get(line.category, ONE)
            )
            line_base = Decimal(line.amount) * rules.base_rate * multiplier / minor_units
            base += line_base
            for running in rules.campaigns:
                if running.applies(basket.occurred_at, basket.store, line.category) and (
                    not running.targeted or (audience is not None and audience.reaches(running))
                ):
                    campaign += line_base * (running.multiplier - ONE)

        progress = dict(stamps or {})
        stamp = 0
        touched: dict[str, int] = {}
        for card in rules.stamp_cards:
            bought = sum(i.quantity for i in basket.items if i.category == card.category)
            if not bought:
                continue
            collected = progress.get(card.name, 0) + bought
            stamp += collected // card.buy * card.reward
            touched[card.name] = collected % card.buy

        exact_stamp = Decimal(stamp)
        cap = rules.max_points_per_purchase
        if cap is not None and base + campaign + exact_stamp > cap:
            # Over the cap: campaign first, then base, then stamps.
            exact_stamp = min(exact_stamp, Decimal(cap))
            base = min(base, cap - exact_stamp)
            campaign = min(campaign, cap - exact_stamp - base)

        earned_on = base + campaign
        tier = earned_on * (tier_multiplier - ONE)
        premium = earned_on * (premium_multiplier - ONE) if premium_multiplier else Decimal(0)
        exact = {
            "base": base,
            "campaign": campaign,
            "stamp": exact_stamp,
            "tier": tier,
            "premium": premium,
        }
        return Earned(**_split(exact), stamps=touched)


def _split(exact: Mapping[str, Decimal]) -> dict[str, int]:
    """The floor of the parts' exact sum, split between them by the largest remainder."""
    if any(value < 0 for value in exact.values()):
        raise ValueError("an earn part cannot be negative")
    # `//` truncates, which is the floor of a value that is not negative.
    total = int(sum(exact.values(), Decimal(0)) // 1)
    parts = {name: int(value // 1) for name, value in exact.items()}
    left = total - sum(parts.values())
    if left:
        fraction = {name: exact[name] - parts[name] for name in exact}
        for name in sorted(exact, key=lambda n: (-fraction[n], PARTS.index(n)))[:left]:
            parts[name] += 1
    return parts


def as_parts(earned: Earned) -> dict[str, int]:
    """The ledger's lots of `earned` (`coalition.ledger.awards.Award.parts`): the merchant's
    (base, campaign, stamp) and the operator's (tier, premium: lot source `tier`)."""
    return {"merchant": earned.merchant_funded, "tier": earned.operator_funded}
