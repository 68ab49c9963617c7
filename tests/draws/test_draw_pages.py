"""The draws' pages (SPEC 3.9): staff open and close draws in `/ops/draws` (audited), anyone
reads `/draws/{id}` with its "verify it yourself" program once closed, and a member sees the
open draws and its own part in each at `/me/draws`."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from flask.testing import FlaskClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from coalition import audit, clock, tenancy
from coalition.members import credentials
from draws import services
from tests import factories
from tests.draws.helpers import OPERATOR, open_draw, purchase_now
from tests.draws.test_draws_api import factories_public_id
from tests.ops_helpers import csrf_token, sign_in_as


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def _sign_in_member(client: FlaskClient, session: Session, member: int) -> None:
    public_id = session.execute(
        text("SELECT public_id FROM members WHERE id = :m"), {"m": member}
    ).scalar_one()
    session.commit()
    with client.session_transaction() as cookie:
        cookie[credentials.SESSION_KEY] = public_id


def test_staff_open_a_draw_in_the_console_and_it_is_audited(
    client: FlaskClient, session: Session
) -> None:
    staff = sign_in_as(client, session, "support")
    shop = factories.merchant(session, "Books")
    session.commit()
    page = client.get("/ops/draws").get_data(as_text=True)
    assert "Open a draw" in page and "Books" in page
    closes = (clock.utcnow() + timedelta(days=5)).strftime("%Y-%m-%dT%H:%M")

    opened = client.post(
        "/ops/draws",
        data={
            "csrf_token": csrf_token(client, "/ops/draws"),
            "prize": "A year of coffee",
            "entry_points": "50",
            "closes_at": closes,
            "winners_count": "3",
            "partners": [factories_public_id(session, shop)],
            "min_amount": "25.00",
        },
    )

    assert opened.status_code == 303
    detail = client.get(opened.headers["Location"]).get_data(as_text=True)
    shown = _text(detail)
    assert "A year of coffee" in shown and "Close the draw now" in shown
    assert "One per purchase of at least €25.00 at: Books" in shown
    draw_id = opened.headers["Location"].rsplit("/", 1)[1]
    public = client.get(f"/api/v1/draws/{draw_id}").json
    assert public["free_entries"]["min_amount"] == {"amount": 2500, "currency": "EUR"}
    assert public["seed_hash"] in detail
    with tenancy.acting_as(tenancy.SYSTEM, session):
        seed = session.execute(
            text("SELECT seed FROM draws WHERE public_id = :d"), {"d": draw_id}
        ).scalar_one()
    assert seed not in detail
    with tenancy.acting_as(tenancy.SYSTEM, session):
        [event] = audit.events(session, action="draw.opened").rows
    assert (event["actor_label"], event["target_id"]) == (staff.email, draw_id)


def test_a_bad_draw_form_says_what_is_wrong_and_opens_nothing(
    client: FlaskClient, session: Session
) -> None:
    sign_in_as(client, session, "admin")
    token = csrf_token(client, "/ops/draws")
    past = (clock.utcnow() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")

    refused = client.post(
        "/ops/draws",
        data={"csrf_token": token, "prize": "A bike", "closes_at": past, "winners_count": "1"},
    )

    assert refused.status_code == 422
    shown = _text(refused.get_data(as_text=True))
    assert "in the future" in shown
    no_way_in = client.post(
        "/ops/draws",
        data={
            "csrf_token": token,
            "prize": "A bike",
            "closes_at": (clock.utcnow() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"),
            "winners_count": "1",
        },
    )
    assert no_way_in.status_code == 422
    assert "points, free entries or both" in _text(no_way_in.get_data(as_text=True))
    assert (
        client.get("/api/v1/ops/draws", headers=factories.operator_headers(session)).json["data"]
        == []
    )


def test_staff_close_a_draw_and_its_public_page_shows_how_to_verify(
    client: FlaskClient, session: Session
) -> None:
    shop = factories.merchant(session, "Books")
    draw = open_draw(
        session,
        entry_points=None,
        partners=[factories_public_id(session, shop)],
        now=clock.utcnow() - timedelta(minutes=5),
    )
    for _ in range(3):
        purchase_now(session, factories.member(session), shop, 3000)
    staff = sign_in_as(client, session, "finance")
    before = client.get(f"/draws/{draw}")
    assert before.status_code == 200
    assert "Content-Security-Policy" in before.headers
    assert "Verify it yourself" not in before.get_data(as_text=True)

    closed = client.post(
        f"/ops/draws/{draw}/close", data={"csrf_token": csrf_token(client, f"/ops/draws/{draw}")}
    )

    assert closed.status_code == 303
    public = client.get(f"/api/v1/draws/{draw}").json
    page = client.get(f"/draws/{draw}").get_data(as_text=True)
    assert "Verify it yourself" in page
    assert public["seed"] in page and public["entries_hash"] in page
    assert all(w in page for w in public["winners"])
    assert f"/draws/{draw}/entries.txt" in page
    with tenancy.acting_as(tenancy.SYSTEM, session):  # the test reads as the system
        [event] = audit.events(session, action="draw.closed").rows
    assert event["actor_label"] == staff.email


def test_a_member_sees_open_draws_and_its_own_part_in_each(
    client: FlaskClient, session: Session
) -> None:
    shop = factories.merchant(session, "Books")
    member, other = factories.member(session), factories.member(session)
    free = open_draw(
        session,
        prize="Free-only hamper",
        entry_points=None,
        partners=[factories_public_id(session, shop)],
        now=clock.utcnow() - timedelta(minutes=5),
    )
    paid = open_draw(session, prize="Paid bicycle", entry_points=100)
    purchase_now(session, member, shop, 2500)
    purchase_now(session, member, shop, 2500)
    purchase_now(session, other, shop, 2500)
    _sign_in_member(client, session, member)

    page = client.get("/me/draws").get_data(as_text=True)
    shown = _text(page)
    assert "Free-only hamper" in shown and "Paid bicycle" in shown
    assert f'action="/me/draws/{paid}/entries"' in page
    assert f'action="/me/draws/{free}/entries"' not in page  # nothing to buy there
    assert "Your entries so far: 0 with points, 2 free." in shown

    services.close(session, free, now=clock.utcnow(), actor=OPERATOR)
    session.commit()
    with tenancy.acting_as(tenancy.SYSTEM, session):
        mine = session.execute(
            text("SELECT entrant FROM draw_entrants WHERE member_id = :m"), {"m": member}
        ).scalar_one()
    after = _text(client.get("/me/draws").get_data(as_text=True))
    assert mine in after
    winners = client.get(f"/api/v1/draws/{free}").json["winners"]
    assert len(winners) == 1
    assert ("You won!" if winners == [mine] else "Not drawn this time") in after


def test_the_program_on_the_page_recomputes_the_winners_from_the_pages_file(
    client: FlaskClient, session: Session, tmp_path: Path
) -> None:
    shop = factories.merchant(session, "Books")
    draw = open_draw(
        session,
        entry_points=None,
        winners_count=3,
        partners=[factories_public_id(session, shop)],
        now=clock.utcnow() - timedelta(minutes=5),
    )
    for number in range(6):
        member = factories.member(session)
        for _ in range(number % 3 + 1):
            purchase_now(session, member, shop, 2500)
    services.close(session, draw, now=clock.utcnow(), actor=OPERATOR)
    session.commit()

    page = client.get(f"/draws/{draw}").get_data(as_text=True)
    found = re.search(r"<pre><code>(.*?)</code></pre>", page, re.DOTALL)
    assert found is not None
    (tmp_path / "verify.py").write_text(html.unescape(found.group(1)))
    (tmp_path / "entries.txt").write_bytes(client.get(f"/draws/{draw}/entries.txt").data)
    ran = subprocess.run(
        [sys.executable, "-I", "verify.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": os.environ.get("PATH", "")},
    )

    assert ran.stdout.split() == client.get(f"/api/v1/draws/{draw}").json["winners"]
    assert len(ran.stdout.split()) == 3
