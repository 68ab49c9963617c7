"""`coalition demo`: fill an empty database with a believable coalition (SPEC 3.5): partner
merchants with API clients, members, and months of purchases, redemptions and a few refunds,
dated in the past as if the coalition had been running. Like `create_app`, this is a
composition root: it wires every package together, so it may import them all.

Run on a database that already has merchants, it changes nothing. The credentials it makes are
printed once and kept in `instance/demo-credentials.json` (readable by its owner only)."""

from __future__ import annotations

import json
import os
import random
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from coalition import clock, economics, tenancy
from coalition.database import table
from coalition.errors import CoalitionError
from coalition.extensions import db
from coalition.ledger import operations
from coalition.ledger.verify import verify
from coalition.members.services import register_member
from coalition.oauth import clients, scopes

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


def _merchants(session: Session, now: datetime) -> list[tuple[int, str, int]]:
    from merchants.services import create_merchant

    made = []
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
    batch, as a till system would send them at closing time."""
    from merchants.purchases import Line, record_batch, refund_purchase

    till = operations.Actor("job", "demo")
    counts = {"purchases": 0, "redemptions": 0, "refunds": 0}
    baskets: dict[int, list[Line]] = {}
    weights = [share for _, _, share in merchants]
    currency = economics.terms_at(day, session=session).currency
    for n, card in enumerate(cards):
        if rng.random() < 0.12:
            merchant_id = rng.choices(merchants, weights)[0][0]
            amount = rng.randint(300, 15000)
            at = day + timedelta(hours=rng.randint(8, 20), minutes=rng.randint(0, 59))
            purchase = {
                "member": card,
                "amount": amount,
                "currency": currency,
                "external_id": f"demo-{day:%Y%m%d}-{n}",
                "occurred_at": at,
            }
            basket = baskets.setdefault(merchant_id, [])
            basket.append(Line(len(basket) + 1, purchase))
    closing = day + timedelta(hours=21)
    for merchant_id, lines in baskets.items():
        results = record_batch(
            session, merchant_id=merchant_id, lines=lines, actor=till, now=closing
        )
        counts["purchases"] += sum(r["status"] == 201 for r in results)
        for line, result in zip(lines, results, strict=True):
            if result["status"] == 201 and line.purchase and rng.random() < 0.03:
                # Half the basket comes back a few minutes after closing, on a return receipt.
                refund_purchase(
                    session,
                    merchant_id=merchant_id,
                    purchase_id=result["body"]["transaction"]["id"],
                    amount_minor=max(line.purchase["amount"] // 2, 1),
                    external_id=f"return-{line.purchase['external_id']}",
                    actor=till,
                    now=closing + timedelta(minutes=5),
                )
                counts["refunds"] += 1
    counts["redemptions"] += _redemptions(session, merchants, rng, closing, till)
    return counts


def _redemptions(
    session: Session,
    merchants: list[tuple[int, str, int]],
    rng: random.Random,
    now: datetime,
    till: Any,
) -> int:
    """Members with points to spare spend some at a shop of their choice."""
    from coalition.ledger.models import Account

    accounts = table(Account)
    rich = session.execute(
        select(accounts.c.member_id, accounts.c.balance).where(
            accounts.c.kind == "member", accounts.c.balance >= 400
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
    first_id, first_name, _ = merchants[0]
    till = clients.create_client(
        session,
        name=f"{first_name} till and app",
        merchant_id=first_id,
        scopes=scopes.MERCHANT_SCOPES | scopes.MEMBER_SCOPES,
        redirect_uris=["http://127.0.0.1:8000/demo/callback"],
        now=now,
    )
    return {
        "operator_client": {k: operator[k] for k in ("client_id", "client_secret")},
        "merchant_client": {
            "merchant": first_name,
            **{k: till[k] for k in ("client_id", "client_secret")},
        },
        "member_sign_in": {"email": DEMO_MEMBER[0], "password": DEMO_MEMBER[1]},
    }


def _keep(path: Path, credentials: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(credentials, handle, indent=2)


def fill(session: Session, *, members: int, days: int, seed: int, now: datetime) -> dict[str, Any]:
    """The demo coalition, written in the caller's transaction (the command commits it once, so
    a crash leaves nothing and a rerun starts over). Returns what it made, with credentials."""
    rng = random.Random(seed)
    start = datetime.combine((now - timedelta(days=days)).date(), time.min, tzinfo=now.tzinfo)
    merchants = _merchants(session, start - timedelta(days=30))
    cards = _members(session, members, rng, start)
    credentials = _credentials(session, merchants, now)
    totals = {"merchants": len(merchants), "members": len(cards)}
    for offset in range(days):
        day_counts = _day_of_shopping(
            session, start + timedelta(days=offset), merchants, cards, rng
        )
        for name, value in day_counts.items():
            totals[name] = totals.get(name, 0) + value
    zone = current_app.config["COALITION_TIMEZONE"]
    return {
        "totals": totals,
        "credentials": credentials,
        "since": clock.business_date(start, zone),
    }


def settle_history(session: Session, since: date, now: datetime) -> dict[str, int]:
    """Settle every closed day from the first of `since`'s month, and state every month that has
    ended, as the nightly jobs would have done (each run commits on its own). The payment
    instructions wait for Stripe: the demo has no account to pay from."""
    from settlement import runs, statements

    today = clock.business_date(now, current_app.config["COALITION_TIMEZONE"])
    day, stated = since.replace(day=1), 0
    while day < today:
        runs.settle(session, day, now)
        if (day + timedelta(days=1)).day == 1:
            stated += len(statements.issue_month(session, day.strftime("%Y-%m"), now))
            session.commit()
        day += timedelta(days=1)
    return {"days_settled": (today - since.replace(day=1)).days, "statements": stated}


@click.command("demo")
@click.option("--members", default=200, show_default=True, help="Members to enrol.")
@click.option("--days", default=60, show_default=True, help="Days of trading before today.")
@click.option("--seed", default=2026, show_default=True, help="Seed of the random story.")
@click.option(
    "--credentials",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to keep the credentials [default: instance/demo-credentials.json].",
)
@with_appcontext
def demo(members: int, days: int, seed: int, credentials: Path | None) -> None:
    """Fill an empty database with a believable coalition: merchants, members, and months of
    purchases, redemptions and refunds. Does nothing if merchants exist already."""
    from merchants.models import Merchant

    session = db.session()
    kept = credentials or Path(current_app.instance_path) / "demo-credentials.json"
    with tenancy.acting_as(tenancy.SYSTEM, session):
        if session.execute(select(func.count()).select_from(table(Merchant))).scalar():
            click.echo(f"The database has merchants already; demo data left as it is. ({kept})")
            return
        made = fill(session, members=members, days=days, seed=seed, now=clock.utcnow())
        violations = verify(session)
        if violations:
            raise click.ClickException(f"ledger invariants broken: {[v.check for v in violations]}")
        # Kept before the commit: once committed, the secrets exist only as digests.
        _keep(kept, made["credentials"])
        session.commit()
        made["totals"] |= settle_history(session, made["since"], clock.utcnow())
    click.echo("Demo coalition ready: " + json.dumps(made["totals"]))
    click.echo(json.dumps(made["credentials"], indent=2))
    click.echo(f"(kept in {kept})")
