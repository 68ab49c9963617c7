"""`coalition demo`: fill an empty database with a believable coalition (SPEC 3.5): partner
merchants with API clients, members, and months of purchases, redemptions and a few refunds,
dated in the past as if the coalition had been running. Like `create_app`, this is a
composition root: it wires every package together, so it may import them all.

Run on a database that already has merchants, it changes nothing. The credentials it makes are
printed once and kept in `instance/demo-credentials.json` (readable by its owner only)."""

from __future__ import annotations

import json
import logging
import os
import random
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from coalition import audit, clock, economics, tenancy
from coalition.database import table
from coalition.demo_draws import DemoDraws
from coalition.demo_fraud import DemoFraud
from coalition.demo_insights import DemoInsights
from coalition.demo_rewards import DemoRewards
from coalition.demo_targeting import keep_segments, tell
from coalition.errors import CoalitionError
from coalition.extensions import db
from coalition.ledger import operations
from coalition.ledger.rows import Actor
from coalition.ledger.verify import verify
from coalition.members.services import find_member, register_member
from coalition.oauth import clients, scopes
from coalition.privacy import services as privacy

# Name, category, points per euro, share of the coalition's shoppers.
MERCHANTS = (
    ("FreshCart Groceries", "grocery", "1", 30),
    ("Fuel & Go", "fuel", "0.5", 20),
    ("Apotheke am Markt", "pharmacy", "2", 12),
    ("Seitenweise Books", "books", "3", 8),
    ("Kino Lumière", "cinema", "5", 8),
    ("Urban Threads", "fashion", "2", 10),
    ("Bistro Basilico", "restaurant", "2", 7),
    ("HomeWorks DIY", "hardware", "1", 5),
)
FIRST_NAMES = ("Anna", "Ben", "Clara", "David", "Elif", "Felix", "Greta", "Hugo", "Ines", "Jonas")
LAST_NAMES = ("Berger", "Costa", "Dubois", "Eriksen", "Fischer", "García", "Hansen", "Ivanova")
DEMO_MEMBER = ("anna@demo.example", "coalition-demo")
# Every demo shop signs in to the portal with its partnerships email and this password; the
# operator's admin too.
DEMO_PASSWORD = "coalition-demo"
DEMO_STAFF = "admin@coalition.example"
# The printed member's own story (issues 12, 13): she shops at four partners and spends at a
# fifth, so "one balance across shops" shows at first sight. Day: (what, shop, euro cents).
SIGN_INS = (
    ("member_sign_in", "member"),
    ("merchant_sign_in", "merchant portal"),
    ("staff_sign_in", "operator console"),
)
DEMO_MEMBER_STORY = {
    1: ("purchase", 0, 4250),
    4: ("purchase", 2, 3180),
    6: ("purchase", 6, 2600),
    8: ("redemption", 5, 150),
    # A film a month ago: Kino Lumière's points last two months, so hers expire soon.
    26: ("purchase", 4, 2600),
    # A new coat a few days ago: its points wait for Urban Threads' return period (pending).
    57: ("purchase", 5, 8900),
}

# Issue 13: the programme's rules. Each demo shop's till names what it sold (its categories);
# shops with rules earn by them, so campaigns and stamp cards show in the breakdowns.
CATEGORIES = {
    "grocery": ("produce", "bakery", "household"),
    "cinema": ("ticket", "snacks"),
    "restaurant": ("coffee", "food"),
    "books": ("fiction", "children"),
    "fashion": ("clothes", "shoes"),
}
# Points of these shops stay pending for their return period (days).
PENDING_DAYS = {"fashion": 14}
# A cinema's points last two months (a merchant's own term), so some are always expiring.
SHORT_LIVED = {"cinema": 2}
# Members who spend like the coalition's best customers (index: extra euro cents a week), so
# every tier has someone in it, and members who bought the premium year.
BIG_SPENDERS = {1: 90_000, 2: 40_000, 3: 20_000, 4: 8_000}
PREMIUM_MEMBERS = (1, 5, 6)


def _rules(category: str, rate: str, now: datetime) -> dict[str, Any] | None:
    """A shop's earn rules (SPEC 2), as its owner would set them in the portal."""

    def at(days: int) -> str:
        return (now + timedelta(days=days)).isoformat()

    if category == "grocery":
        return {
            "base_rate": rate,
            "category_multipliers": {"produce": "1.5"},
            "campaigns": [
                {
                    "name": "Fresh fortnight",
                    "multiplier": "2",
                    "starts_at": at(-10),
                    "ends_at": at(14),
                    "categories": ["produce"],
                },
            ],
            "max_points_per_purchase": 1000,
        }
    if category == "restaurant":
        return {
            "base_rate": rate,
            "stamp_cards": [{"name": "Coffee card", "category": "coffee", "buy": 8, "reward": 100}],
        }
    if category == "cinema":
        return {
            "base_rate": rate,
            "stamp_cards": [{"name": "Fifth film", "category": "ticket", "buy": 5, "reward": 250}],
        }
    if category == "books":
        return {
            "base_rate": rate,
            "campaigns": [
                {"name": "Book week", "multiplier": "3", "starts_at": at(-20), "ends_at": at(-13)},
            ],
        }
    return None


def _programme(
    session: Session, merchants: list[tuple[int, str, int]], start: datetime, now: datetime
) -> None:
    """The shops' rules, return periods and terms of their own, from before the first day."""
    from merchants import rules
    from merchants.rules_schemas import EarnRulesIn
    from merchants.services import set_pending_days

    versions = table(economics.EconomicsVersion)
    for (merchant_id, _, _), (_, category, rate, _) in zip(merchants, MERCHANTS, strict=True):
        document = _rules(category, rate, now)
        if document is not None:
            rules.put(
                session,
                merchant_id=merchant_id,
                document=EarnRulesIn().load(document),
                actor_id="demo",
                now=start,
            )
        if category in PENDING_DAYS:
            set_pending_days(session, merchant_id, PENDING_DAYS[category], now=start)
        if category in SHORT_LIVED:
            # Written as it stands, from the beginning: `economics.change` schedules only days
            # that have not begun, and the demo's history has.
            session.execute(
                insert(versions).values(
                    merchant_id=merchant_id,
                    effective_from=economics.BEGINNING,
                    terms={"expiry_months": SHORT_LIVED[category]},
                    actor_id="demo",
                    created_at=start,
                )
            )


def _basket(category: str, amount: int, rng: random.Random) -> list[dict[str, Any]] | None:
    """What the till sold, by category, adding up to `amount`; None where the shop sends none."""
    kinds = CATEGORIES.get(category)
    if kinds is None:
        return None
    first = rng.randint(1, amount - 1) if amount > 1 and rng.random() < 0.6 else amount
    lines = [(first, rng.choice(kinds))]
    if first < amount:
        lines.append((amount - first, rng.choice(kinds)))
    return [
        {"sku": f"{kind}-{n}", "category": kind, "amount": part, "quantity": rng.randint(1, 3)}
        for n, (part, kind) in enumerate(lines)
    ]


def _merchants(session: Session, now: datetime) -> list[tuple[int, str, int]]:
    from merchants.services import create_merchant

    made = []
    password_hash = generate_password_hash(DEMO_PASSWORD)
    for name, category, rate, share in MERCHANTS:
        slug = name.split()[0].lower()
        merchant_id, _ = create_merchant(
            session,
            name,
            status="active",
            now=now,
            details={
                "email": f"partners@{slug}.example",
                "country": "DE",
                "category": category,
                "website": f"https://{slug}.example",
                "contact_name": f"{name} partnerships",
                "base_rate": Decimal(rate),
                "password_hash": password_hash,
            },
        )
        made.append((merchant_id, name, share))
    return made


def _members(session: Session, count: int, rng: random.Random, now: datetime) -> list[str]:
    cards = []
    for n in range(count):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        email, password = DEMO_MEMBER if n == 0 else (f"member{n}@demo.example", None)
        member = register_member(
            session,
            now=now - timedelta(days=rng.randint(0, 30)),
            card_prefix=current_app.config["COALITION_CARD_PREFIX"],
            email=email,
            name="Anna Berger" if n == 0 else f"{first} {last}",
            password_hash=generate_password_hash(password) if password else None,
        )
        tell(session, n, member.id, member.created_at, member.created_at.date())
        if n % 3 == 1:
            # A third of the members let the shops where they buy send them offers by email
            # (every other one of those by text message too), so each shop has an audience.
            wanted = {"email": True, "sharing": True, "sms": n % 2 == 1}
            privacy.set_consents(
                session, member.id, wanted, source=privacy.ME, now=member.created_at
            )
        cards.append(member.card_number)
    return cards


def _day_of_shopping(
    session: Session,
    day: datetime,
    merchants: list[tuple[int, str, int]],
    cards: list[str],
    rng: random.Random,
) -> dict[str, int]:
    """One day: about one member in eight shops somewhere; each shop's purchases go in as one
    batch, as a till system would send them at closing time. The night's jobs are the caller's
    (`_night`), once the day's other doings are written."""
    from merchants.purchases import Line, PurchaseResult, record_batch, refund_purchase

    till = Actor("job", "demo")
    counts = {"purchases": 0, "redemptions": 0, "refunds": 0}
    baskets: dict[int, list[Line]] = {}
    weights = [share for _, _, share in merchants]
    category_of = {m[0]: spec[1] for m, spec in zip(merchants, MERCHANTS, strict=True)}
    currency = economics.terms_at(day, session=session).currency
    for n, card in enumerate(cards):
        shopping = []
        if rng.random() < 0.12:
            shopping.append((rng.choices(merchants, weights)[0][0], rng.randint(300, 15000), ""))
        if n in BIG_SPENDERS and day.weekday() == 5:
            # The week's big shop: furniture, a tank of fuel for the fleet, the family's clothes.
            shopping.append((merchants[7][0], BIG_SPENDERS[n], "-big"))
        for merchant_id, amount, kind in shopping:
            at = day + timedelta(hours=rng.randint(8, 20), minutes=rng.randint(0, 59))
            purchase = {
                "member": card,
                "amount": amount,
                "currency": currency,
                "external_id": f"demo-{day:%Y%m%d}-{n}{kind}",
                "occurred_at": at,
            }
            items = _basket(category_of[merchant_id], amount, rng)
            if items:
                purchase["items"] = items
            basket = baskets.setdefault(merchant_id, [])
            basket.append(Line(len(basket) + 1, purchase))
    closing = day + timedelta(hours=21)
    for merchant_id, lines in baskets.items():
        outcomes = record_batch(
            session, merchant_id=merchant_id, lines=lines, actor=till, now=closing
        )
        recorded = [
            o.transaction.id if isinstance(o, PurchaseResult) and not o.replayed else None
            for o in outcomes
        ]
        counts["purchases"] += sum(purchase_id is not None for purchase_id in recorded)
        for line, purchase_id in zip(lines, recorded, strict=True):
            if purchase_id is not None and rng.random() < 0.03:
                # Half the basket comes back a few minutes after closing, on a return receipt.
                refund_purchase(
                    session,
                    merchant_id=merchant_id,
                    purchase_id=purchase_id,
                    amount_minor=max(line.purchase["amount"] // 2, 1),
                    external_id=f"return-{line.purchase['external_id']}",
                    actor=till,
                    now=closing + timedelta(minutes=5),
                )
                counts["refunds"] += 1
    counts["redemptions"] += _redemptions(session, merchants, rng, closing, till)
    return counts


def _night(session: Session, midnight: datetime) -> None:
    """What the nightly jobs do to points at `midnight`: confirm those whose return period has
    passed, expire those whose life has ended (SPEC 2), as each night of the history did."""
    from coalition.ledger.expiry import expire_due_lots
    from coalition.ledger.pending import confirm_due_lots

    while confirm_due_lots(session, cutoff=midnight, now=midnight):
        pass
    job = Actor("job", "expire-points")
    while expire_due_lots(session, cutoff=midnight, now=midnight, actor=job):
        pass


def _demo_member_story(
    session: Session, offset: int, day: datetime, merchants: list[tuple[int, str, int]], card: str
) -> dict[str, int]:
    from merchants.purchases import Line, record_batch

    if offset not in DEMO_MEMBER_STORY:
        return {}
    what, shop, amount = DEMO_MEMBER_STORY[offset]
    merchant_id = merchants[shop][0]
    at = day + timedelta(hours=11)
    till = Actor("job", "demo")
    if what == "redemption":
        from coalition.ledger.models import Account

        member = find_member(session, card)
        accounts = table(Account)
        balance = session.execute(
            select(accounts.c.balance).where(accounts.c.member_id == member.id)
        ).scalar_one()
        # Random shoppers may have spent some of hers already: she spends what is left, at most.
        points = min(amount, balance)
        if points < 1:
            return {}
        try:
            operations.redeem(
                session,
                member_id=member.id,
                merchant_id=merchant_id,
                points=points,
                actor=till,
                now=at,
            )
        except CoalitionError:
            return {}  # a hold or a debt left too little, as for any member
        return {"redemptions": 1}
    purchase = {
        "member": card,
        "amount": amount,
        "currency": economics.terms_at(day, session=session).currency,
        "external_id": f"demo-member-{offset}",
        "occurred_at": at,
    }
    record_batch(session, merchant_id=merchant_id, lines=[Line(1, purchase)], actor=till, now=at)
    return {"purchases": 1}


def _redemptions(
    session: Session,
    merchants: list[tuple[int, str, int]],
    rng: random.Random,
    now: datetime,
    till: Any,
) -> int:
    """Members with points to spare spend some at a shop of their choice; not Anna, whose own
    story spends hers (so her points expiring soon are still there to see)."""
    from coalition.ledger.models import Account
    from coalition.members.models import Member

    accounts, members = table(Account), table(Member)
    anna = select(members.c.id).where(members.c.email == DEMO_MEMBER[0]).scalar_subquery()
    rich = session.execute(
        select(accounts.c.member_id, accounts.c.balance).where(
            accounts.c.kind == "member",
            accounts.c.balance >= 400,
            accounts.c.member_id != func.coalesce(anna, 0),
        )
    ).all()
    done = 0
    for member_id, balance in rich:
        if rng.random() < 0.15:
            points = rng.randint(100, min(balance, 1500)) // 50 * 50
            try:
                operations.redeem(
                    session,
                    member_id=member_id,
                    merchant_id=rng.choice(merchants)[0],
                    points=points,
                    actor=till,
                    now=now + timedelta(minutes=30),
                )
                done += 1
            except CoalitionError:
                continue  # a hold or a debt left too little: the member tries another day
    return done


def _credentials(
    session: Session, merchants: list[tuple[int, str, int]], now: datetime
) -> dict[str, Any]:
    operator = clients.create_client(
        session, name="demo operator", merchant_id=None, scopes={"operator"}, now=now
    )
    from coalition.staff.services import create_staff

    # An admin of the operator's console; production would ask it for a second factor (TOTP).
    create_staff(session, email=DEMO_STAFF, role="admin", password=DEMO_PASSWORD, now=now)
    first_id, first_name, _ = merchants[0]
    # A till: merchant scopes only. Members sign in at /me, not through a demo app of its own.
    till = clients.create_client(
        session,
        name=f"{first_name} till",
        merchant_id=first_id,
        scopes=scopes.MERCHANT_SCOPES,
        now=now,
    )
    slug = first_name.split()[0].lower()
    return {
        "operator_client": {k: operator[k] for k in ("client_id", "client_secret")},
        "merchant_client": {
            "merchant": first_name,
            **{k: till[k] for k in ("client_id", "client_secret")},
        },
        "merchant_sign_in": {
            "url": "/portal",
            "merchant": first_name,
            "email": f"partners@{slug}.example",
            "password": DEMO_PASSWORD,
        },
        "member_sign_in": {"url": "/me", "email": DEMO_MEMBER[0], "password": DEMO_MEMBER[1]},
        "staff_sign_in": {"url": "/ops", "email": DEMO_STAFF, "password": DEMO_PASSWORD},
    }


def _keep(path: Path, credentials: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(credentials, handle, indent=2)


def fill(
    session: Session,
    *,
    members: int,
    days: int,
    seed: int,
    now: datetime,
    progress: Callable[[int], None] = lambda _days: None,
) -> dict[str, Any]:
    """The demo coalition, written in the caller's transaction (the command commits it once, so
    a crash leaves nothing and a rerun starts over). Returns what it made, with credentials;
    `progress` is told of each day of trading done."""
    rng = random.Random(seed)
    start = datetime.combine((now - timedelta(days=days)).date(), time.min, tzinfo=now.tzinfo)
    merchants = _merchants(session, start - timedelta(days=30))
    cards = _members(session, members, rng, start)
    credentials = _credentials(session, merchants, now)
    _programme(session, merchants, start - timedelta(days=1), now)
    draws = DemoDraws(days, merchants, cards, rng, _demo_staff(session))
    catalogue = DemoRewards(days, merchants, cards, rng)
    fraud = DemoFraud(days, merchants, cards)
    patterns = DemoInsights(days, merchants, random.Random(seed + 16))
    economics.forget()  # the shops' own terms, written for days already cached
    premium_from = start + timedelta(days=2, hours=10)
    totals = {"merchants": len(merchants), "members": len(cards)}
    for offset in range(days):
        day = start + timedelta(days=offset)
        day_counts = _day_of_shopping(session, day, merchants, cards, rng)
        story = _demo_member_story(session, offset, day, merchants, cards[0]) if days > 8 else {}
        drawn = draws.day(session, offset, day)
        ordered = catalogue.day(session, offset, day)
        found = fraud.day(session, offset, day)
        shown = patterns.day(session, offset, day)
        _night(session, day + timedelta(days=1))
        for name, value in [
            *day_counts.items(),
            *story.items(),
            *drawn.items(),
            *ordered.items(),
            *found.items(),
            *shown.items(),
        ]:
            totals[name] = totals.get(name, 0) + value
        if day <= premium_from < day + timedelta(days=1):
            totals["premium_members"] = _premium(session, cards, premium_from)
        progress(1)
    totals |= _tonight(session, now)
    totals["segments"] = len(keep_segments(session, merchants[0][0], now))
    zone = current_app.config["COALITION_TIMEZONE"]
    return {
        "totals": totals,
        "credentials": credentials,
        "since": clock.business_date(start, zone),
    }


def _demo_staff(session: Session) -> audit.Actor:
    from coalition.staff.models import Staff

    staff = table(Staff)
    staff_id = session.execute(select(staff.c.id).where(staff.c.email == DEMO_STAFF)).scalar_one()
    return audit.Actor.staff(staff_id, DEMO_STAFF)


def _premium(session: Session, cards: list[str], now: datetime) -> int:
    """A few members bought the premium year (paid as the Stripe webhook would confirm it)."""
    from coalition.members import premium

    terms = economics.terms_at(now, session=session)
    bought = 0
    for n in PREMIUM_MEMBERS:
        if n < len(cards):
            member = find_member(session, cards[n])
            premium.paid_year(session, member.id, now, terms.premium, terms.currency, f"demo-{n}")
            bought += 1
    return bought


def _tonight(session: Session, now: datetime) -> dict[str, int]:
    """Tonight's jobs, run now: the notices of points expiring within 30 days, and every
    member's tier recalculated over the trailing year."""
    from coalition.ledger.expiry import NOTICE_AHEAD, notify_expiring
    from coalition.members import tiers

    told = 0
    while touched := notify_expiring(session, horizon=now + NOTICE_AHEAD, now=now):
        told += touched
    zone = current_app.config["COALITION_TIMEZONE"]
    yesterday = clock.business_date(now, zone) - timedelta(days=1)
    changed = tiers.recalculate(session, yesterday, now).changed
    return {"expiry_notices": told, "tier_changes": changed}


def history_days(since: date, now: datetime) -> int:
    """How many days `settle_history` settles: from the first of `since`'s month to yesterday."""
    today = clock.business_date(now, current_app.config["COALITION_TIMEZONE"])
    return (today - since.replace(day=1)).days


def settle_history(
    session: Session,
    since: date,
    now: datetime,
    progress: Callable[[int], None] = lambda _days: None,
) -> dict[str, int]:
    """Settle every closed day from the first of `since`'s month, and state every month that has
    ended, as the nightly jobs would have done (each run commits on its own); `progress` is
    told of each day settled. The payment instructions wait for Stripe: the demo has no
    account to pay from."""
    from coalition import demo_disputes
    from settlement import closing

    def walk(days: list[date]) -> Iterator[date]:
        for day in days:
            yield day
            progress(1)

    first = since.replace(day=1)
    closed = closing.close(
        session, first, first + timedelta(days=history_days(since, now) - 1), now, walk=walk
    )
    totals = {"days_settled": len(closed.days_settled), "statements": len(closed.statements)}
    return totals | demo_disputes.one_resolved(session, _demo_staff(session), now)  # issue 16


@click.command("demo")
@click.option("--members", default=200, show_default=True, help="Members to enrol.")
@click.option("--days", default=60, show_default=True, help="Days of trading before today.")
@click.option("--seed", default=2026, show_default=True, help="Seed of the random story.")
@click.option(
    "--credentials",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to keep the credentials [default: instance/demo-credentials.json].",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print what was made as one JSON object, for scripts."
)
@with_appcontext
def demo(members: int, days: int, seed: int, credentials: Path | None, as_json: bool) -> None:
    """Fill an empty database with a believable coalition: merchants, members, and months of
    purchases, redemptions and refunds. Does nothing if merchants exist already."""
    from merchants.models import Merchant

    session = db.session()
    kept = credentials or Path(current_app.instance_path) / "demo-credentials.json"
    with tenancy.acting_as(tenancy.SYSTEM, session):
        if session.execute(select(func.count()).select_from(table(Merchant))).scalar():
            if as_json:
                click.echo(json.dumps({"made": False, "kept": str(kept)}))
            else:
                click.echo(f"The database has merchants already; demo data left as it is. ({kept})")
            return
        with _progress(days, "Trading") as bar:
            made = fill(
                session,
                members=members,
                days=days,
                seed=seed,
                now=clock.utcnow(),
                progress=bar.update,
            )
        violations = verify(session)
        if violations:
            raise click.ClickException(f"ledger invariants broken: {[v.check for v in violations]}")
        # Kept before the commit: once committed, the secrets exist only as digests.
        _keep(kept, made["credentials"])
        session.commit()
        now = clock.utcnow()
        # The bar says what settlement's line a day would: those stay quiet meanwhile.
        with _progress(history_days(made["since"], now), "Settling") as bar, _quiet("settlement"):
            made["totals"] |= settle_history(session, made["since"], now, progress=bar.update)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "made": True,
                    "totals": made["totals"],
                    "credentials": made["credentials"],
                    "kept": str(kept),
                }
            )
        )
    else:
        click.echo(_summary(made["totals"], made["credentials"], days, kept))


def _progress(length: int, label: str) -> Any:
    """A progress bar on stderr, so that stdout holds only the result."""
    return click.progressbar(length=length, label=f"{label:<9}", file=sys.stderr)


@contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """Only warnings from `logger_name` while inside."""
    quieted = logging.getLogger(logger_name)
    level = quieted.level
    quieted.setLevel(max(logging.WARNING, quieted.getEffectiveLevel()))
    try:
        yield
    finally:
        quieted.setLevel(level)


def _summary(totals: dict[str, int], credentials: dict[str, Any], days: int, kept: Path) -> str:
    operator = credentials["operator_client"]
    till = credentials["merchant_client"]
    lines = [
        f"Demo coalition ready: {totals['merchants']} merchants, {totals['members']} members,"
        f" {days} days of trading.",
        f"  {totals['purchases']} purchases, {totals['redemptions']} redemptions,"
        f" {totals['refunds']} refunds",
        f"  {totals['days_settled']} days settled, {totals['statements']} monthly statements",
        f"  {totals.get('premium_members', 0)} premium members,"
        f" {totals.get('expiry_notices', 0)} members told of points expiring soon;"
        " campaigns and stamp cards at FreshCart, Bistro Basilico, Kino Lumière and"
        " Seitenweise; Urban Threads' points wait 14 days for its return period",
        f"  {totals.get('draws', 0)} prize draws ({totals.get('draws_closed', 0)} closed, its"
        f" winners drawn), {totals.get('draw_entries', 0)} entries bought with points;"
        f" {totals.get('rewards', 0)} rewards in the catalogue, {totals.get('orders', 0)} ordered",
        f"  {totals.get('segments', 0)} segments (half the members told about themselves and"
        f" allow profiling); {totals.get('fraud_alerts', 0)} fraud alerts for the nightly report's"
        " page, from a self-dealing kiosk and an enrol-and-drain ring",
        "",
        "Sign in to each face (pages under the server's address):",
    ]
    for key, face in SIGN_INS:
        if key in credentials:
            who = credentials[key]
            lines += [
                f"  {face:<16} {who['url']:<8} {who['email']}  password {who['password']}",
            ]
    lines += [
        "",
        "API clients (tokens from /oauth/token with client_credentials; docs at /api/v1/docs)",
        "  operator         client_id " + operator["client_id"],
        "                   client_secret " + operator["client_secret"],
        f"  {till['merchant']} till",
        "                   client_id " + till["client_id"],
        "                   client_secret " + till["client_secret"],
        "",
        f"Kept in {kept} (readable by you only); `--json` prints all this for scripts.",
    ]
    return "\n".join(lines)
