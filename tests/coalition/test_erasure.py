"""Erasure (SPEC 2, issue 13 point 7): after a member erases itself, its email, name and phone
are found in no text or JSON column of any table; its card is blocked, every token it granted
is revoked, its holds are voided and its points written off to breakage through the ledger,
which stays whole; and no settled figure moves: a day settled before the erasure reads the same
after it."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import JSON, MetaData, String, Text, cast, func, select, text, update
from sqlalchemy.orm import Session

from coalition import clock, idempotency, outbox, tenancy
from coalition.database import table
from coalition.ledger import holds
from coalition.ledger.models import Account, Hold, Transaction
from coalition.members import credentials
from coalition.members.models import Member
from coalition.oauth.models import AuthorizationCode, OAuthToken
from coalition.privacy import reads as privacy_reads
from coalition.privacy import services as privacy
from merchants import purchases
from settlement import runs
from tests import factories as f
from tests.factories import T0

pytestmark = pytest.mark.both_backends
members = table(Member)
accounts = table(Account)
transactions = table(Transaction)
hold_rows = table(Hold)
tokens = table(OAuthToken)
codes = table(AuthorizationCode)

EMAIL = "erasmus.quill@example.org"
NAME = "Erasmus Quillfeather"
PHONE = "+44 7700 900123"
# What must be found nowhere: the email, the name (and its rarest part alone), the phone.
NEEDLES = (EMAIL, NAME, "Quillfeather", PHONE)
PASSWORD = "a long enough password"
DAY = date(2026, 3, 2)  # T0's business day
NEXT_MORNING = datetime(2026, 3, 3, 6, tzinfo=UTC)
SETTLEMENT_TABLES = ("settlement_runs", "settlement_positions", "settlement_flows", "statements")


def _text_columns(session: Session) -> list[tuple[Any, Any]]:
    """Every text or JSON column of every table of the database as it is (reflected, not as
    the models say it should be)."""
    reflected = MetaData()
    reflected.reflect(session.connection())
    return [
        (t, c)
        for t in reflected.sorted_tables
        for c in t.columns
        if isinstance(c.type, String | Text | JSON)
    ]


def _found(session: Session) -> dict[str, list[str]]:
    """Each needle, with the `table.column`s that hold it (in any letter case)."""
    hits: dict[str, list[str]] = {}
    with tenancy.acting_as(tenancy.SYSTEM, session):
        columns = _text_columns(session)
        for needle in NEEDLES:
            for t, c in columns:
                holds_it = session.execute(
                    select(func.count())
                    .select_from(t)
                    .where(func.lower(cast(c, Text)).contains(needle.lower(), autoescape=True))
                ).scalar_one()
                if holds_it:
                    hits.setdefault(needle, []).append(f"{t.name}.{c.name}")
    return hits


def _settled(session: Session) -> dict[str, list[Any]]:
    """Every row of the settlement's tables, as they are."""
    with tenancy.acting_as(tenancy.SYSTEM, session):
        return {
            name: [tuple(r) for r in session.execute(text(f"SELECT * FROM {name} ORDER BY 1, 2"))]
            for name in SETTLEMENT_TABLES
        }


def _token(client: FlaskClient, path: str) -> str:
    html = client.get(path).get_data(as_text=True)
    found = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html
    )
    assert found is not None, html
    return found.group(1)


@pytest.fixture
def erasable(client: FlaskClient, session: Session) -> dict[str, Any]:
    """A member enrolled at Alpha's till with an email, a phone and a name, who later set a
    password; it shopped at Alpha on a day since settled and at Beta through the API (with
    idempotency keys), has a hold at Alpha, granted consents through Beta's app and on its site,
    and holds tokens of both merchants' apps."""
    alpha, beta = f.merchant(session, "Alpha"), f.merchant(session, "Beta")
    enrolled = client.post(
        "/api/v1/members",
        json={"email": EMAIL, "phone": PHONE, "name": NAME},
        headers=f.merchant_headers(session, alpha),
    )
    assert enrolled.status_code == 201
    card = enrolled.json["card_number"]
    with tenancy.acting_as(tenancy.SYSTEM, session):  # the test writes as the system
        member = session.execute(
            select(members.c.id).where(members.c.public_id == enrolled.json["id"])
        ).scalar_one()
        session.execute(
            update(members)
            .where(members.c.id == member)
            .values(password_hash=credentials.hash_password(PASSWORD))
        )
        f.purchase(session, member, alpha, 200)  # on DAY
        settled_run = runs.settle(session, DAY, NEXT_MORNING)
        assert settled_run.kind == "final"
        till = f.merchant_headers(session, beta)
        scopes = "balance:read consents:write redeem"
        app = f.client(session, beta, scopes, redirect_uris=["https://beta.example/cb"])
        beta_app = f.bearer(session, app["client_id"], scopes, member_id=member)
        alpha_app = f.member_headers(session, alpha, member)

    for n in (1, 2):
        bought = client.post(
            "/api/v1/purchases",
            json={"member": card, "amount": 5000, "currency": "EUR", "external_id": f"b-{n}"},
            headers={**till, "Idempotency-Key": f"purchase-{n}"},
        )
        assert bought.status_code == 201, bought.json
    consented = client.put("/api/v1/me/consents", json={"email": True}, headers=beta_app)
    assert consented.status_code == 200

    with tenancy.acting_as(tenancy.SYSTEM, session):
        now = clock.utcnow()
        holds.place_hold(session, member_id=member, merchant_id=alpha, points=30, now=now)
        # Copies of the contact that other features may keep: an event about the member, and
        # an idempotent answer that showed it (an enrolment's, say).
        outbox.emit(
            session,
            "member.tier_changed",
            {"member": {"id": enrolled.json["id"], "email": EMAIL, "name": NAME, "phone": PHONE}},
            now,
            member_id=member,
        )
        idempotency.execute(
            session,
            scope=tenancy.Tenant.merchant(alpha).setting,
            key="enrol-1",
            request_fingerprint="f",
            operation=lambda: (201, {"member": {"email": EMAIL, "name": NAME, "phone": PHONE}}),
            now=now,
        )
    session.commit()
    return {
        "member": member,
        "card": card,
        "alpha": alpha,
        "beta": beta,
        "apps": (beta_app, alpha_app),
    }


def _sign_in_and_erase(client: FlaskClient) -> Any:
    token = _token(client, "/me/sign-in")
    signed_in = client.post(
        "/me/sign-in", data={"email": EMAIL, "password": PASSWORD, "csrf_token": token}
    )
    assert signed_in.status_code == 303
    assert (
        client.post(
            "/me/privacy",
            data={"sms": "y", "sharing": "y", "csrf_token": _token(client, "/me/privacy")},
        ).status_code
        == 303
    )
    return client.post(
        "/me/erase",
        data={"email": EMAIL, "confirm": "y", "csrf_token": _token(client, "/me/erase")},
    )


def test_after_erasure_no_column_of_any_table_holds_the_members_contact(
    client: FlaskClient, session: Session, erasable: dict[str, Any]
) -> None:
    before = _found(session)
    # The search finds what is there: the member's row, the event, the stored answer.
    assert "members.email" in before[EMAIL] and "members.phone" in before[PHONE]
    assert "outbox_events.data" in before[NAME]
    assert "idempotency_keys.response" in before["Quillfeather"]

    erased = _sign_in_and_erase(client)

    assert erased.status_code == 303
    assert _found(session) == {}


def test_erasure_blocks_the_card_revokes_every_grant_and_writes_the_points_off(
    client: FlaskClient, session: Session, erasable: dict[str, Any]
) -> None:
    member = erasable["member"]
    account = session.execute(
        select(accounts.c.id).where(accounts.c.member_id == member)
    ).scalar_one()
    balance = session.execute(
        select(accounts.c.balance).where(accounts.c.id == account)
    ).scalar_one()
    assert balance == 300  # 200 at Alpha, 2 x 50 at Beta

    _sign_in_and_erase(client)

    with tenancy.acting_as(tenancy.SYSTEM, session):
        row = session.execute(select(members).where(members.c.id == member)).one()
        assert (row.status, row.email, row.phone, row.name, row.password_hash) == (
            "blocked",
            None,
            None,
            None,
            None,
        )
        assert (
            session.execute(select(accounts.c.balance).where(accounts.c.id == account)).scalar_one()
            == 0
        )
        written_off = session.execute(
            select(transactions.c.type, transactions.c.points, transactions.c.reason).where(
                transactions.c.member_account_id == account, transactions.c.type == "expiry"
            )
        ).all()
        assert [tuple(w) for w in written_off] == [("expiry", 300, "erasure")]
        assert session.execute(
            select(hold_rows.c.status).where(hold_rows.c.account_id == account)
        ).scalars().all() == ["voided"]
        live = session.execute(
            select(func.count()).where(tokens.c.member_id == member, tokens.c.revoked_at.is_(None))
        ).scalar_one()
        assert live == 0
        events = session.execute(
            select(outbox.outbox_events.c.type, outbox.outbox_events.c.merchant_id).where(
                outbox.outbox_events.c.type == "member.erased"
            )
        ).all()
        assert sorted(events) == sorted(
            [("member.erased", erasable["alpha"]), ("member.erased", erasable["beta"])]
        )
    # Every consent is withdrawn, and the history says so.
    current = privacy_reads.current_consents(session, member)
    assert {p: c.granted for p, c in current.items()} == {
        "email": False,
        "sms": False,
        "sharing": False,
    }
    # The card is no one's: a till that shows it finds nobody, a token of the member is refused.
    till = f.merchant_headers(session, erasable["alpha"])
    looked_up = client.get(f"/api/v1/members/{erasable['card']}", headers=till)
    assert looked_up.status_code == 404
    for app in erasable["apps"]:
        answer = client.get("/api/v1/me", headers=app)
        assert (answer.status_code, answer.json["code"]) == (401, "invalid_token")
    # Signed out, and the same email cannot sign in.
    assert client.get("/me/").status_code == 302


def test_a_settled_day_reads_the_same_after_the_erasure(
    client: FlaskClient, session: Session, erasable: dict[str, Any]
) -> None:
    settled = _settled(session)
    assert settled["settlement_positions"], "the day before the erasure has positions"

    _sign_in_and_erase(client)

    assert _settled(session) == settled
    # Asking for the day again gives the same run, unchanged.
    again = runs.settle(session, DAY, NEXT_MORNING + timedelta(days=300))
    assert _settled(session) == settled
    assert again.kind == "final"


def test_erasing_twice_finds_nobody_and_changes_nothing(
    session: Session, erasable: dict[str, Any]
) -> None:
    privacy.erase(session, erasable["member"], source=privacy.ME, now=clock.utcnow())
    settled = _settled(session)

    with pytest.raises(privacy.AlreadyErased):
        privacy.erase(session, erasable["member"], source=privacy.ME, now=clock.utcnow())

    assert _settled(session) == settled


def test_a_member_in_debt_is_erased_and_its_debt_stays_the_operators(
    session: Session,
) -> None:
    shop = f.merchant(session)
    member = f.member(session)
    bought = f.purchase(session, member, shop, 100)
    f.redeem(session, member, shop, 80)
    # A full refund claws back 100 points where 20 are left: 80 become a debt.
    purchases.refund_purchase(
        session,
        merchant_id=shop,
        purchase_id=bought["transaction"]["id"],
        amount_minor=10000,
        external_id="return-1",
        actor=f.TILL,
        now=T0 + timedelta(hours=1),
    )
    debt_before = session.execute(
        select(accounts.c.debt).where(accounts.c.member_id == member)
    ).scalar_one()
    assert debt_before == 80

    done = privacy.erase(session, member, source=privacy.ME, now=T0 + timedelta(hours=2))

    assert (done.points_written_off, done.debt_left) == (0, 80)
    row = session.execute(
        select(accounts.c.balance, accounts.c.debt).where(accounts.c.member_id == member)
    ).one()
    assert tuple(row) == (-80, 80)  # unchanged: the ledger invariants still hold


def test_an_unused_authorization_code_dies_with_the_member(session: Session) -> None:
    shop = f.merchant(session)
    member = f.member(session)
    app = f.client(session, shop, "balance:read", redirect_uris=["https://a.example/cb"])
    with tenancy.acting_as(tenancy.SYSTEM, session):
        client_pk = session.execute(
            text("SELECT id FROM oauth_clients WHERE client_id = :c"), {"c": app["client_id"]}
        ).scalar_one()
        session.execute(
            codes.insert().values(
                code_hash="h" * 64,
                client_id=client_pk,
                merchant_id=shop,
                member_id=member,
                redirect_uri="https://a.example/cb",
                scope="balance:read",
                code_challenge="c" * 43,
                code_challenge_method="S256",
                auth_time=T0,
                expires_at=T0 + timedelta(minutes=5),
            )
        )

    privacy.erase(session, member, source=privacy.ME, now=T0)

    with tenancy.acting_as(tenancy.SYSTEM, session):
        used = session.execute(
            select(codes.c.used_at).where(codes.c.member_id == member)
        ).scalar_one()
    assert used == T0
