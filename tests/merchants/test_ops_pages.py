"""The console's merchant pages (SPEC 3.9): staff approve or refuse applications (with a reason
the merchant can read), suspend and reactivate merchants and see their clients; every decision
is in the audit log with its before and after, naming the staff."""

from __future__ import annotations

from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from coalition import audit, clock
from merchants import reads, services
from tests import factories as f
from tests.ops_helpers import csrf_token, sign_in_as


def _apply(session: Session, name: str = "Bäckerei Sonne", email: str = "sonne@example.org") -> str:
    standing = services.apply(
        session,
        name=name,
        email=email,
        country="DE",
        category="bakery",
        website="https://sonne.example",
        contact_name="Ann Sonne",
        password_hash="x",
        now=clock.utcnow(),
    )
    session.commit()
    return standing.id


def test_pending_applications_are_listed_first_and_can_be_approved(
    client: FlaskClient, session: Session
) -> None:
    applicant = _apply(session)
    staff = sign_in_as(client, session, "support")

    listed = client.get("/ops/merchants")
    html = listed.get_data(as_text=True)
    assert listed.status_code == 200
    assert "Bäckerei Sonne" in html and "sonne@example.org" in html
    token = csrf_token(client, "/ops/merchants")
    done = client.post(f"/ops/merchants/{applicant}/approve", data={"csrf_token": token})

    assert done.status_code == 303
    page = client.get(done.headers["Location"]).get_data(as_text=True)
    assert "The merchant is approved" in page
    assert reads.merchant(session, applicant)["status"] == "active"
    [event] = audit.events(session, action="merchant.approve").rows
    assert (event["actor_kind"], event["actor_label"]) == ("staff", staff.email)
    assert (event["before"], event["after"]) == ({"status": "pending"}, {"status": "active"})
    empty = client.get("/ops/merchants").get_data(as_text=True)
    assert "No application is waiting" in empty


def test_an_application_is_refused_with_a_reason_the_merchant_can_read(
    client: FlaskClient, session: Session
) -> None:
    applicant = _apply(session)
    sign_in_as(client, session, "admin")
    token = csrf_token(client, f"/ops/merchants/{applicant}")

    without = client.post(
        f"/ops/merchants/{applicant}/refuse", data={"csrf_token": token, "reason": " "}
    )
    assert without.status_code == 422
    assert reads.merchant(session, applicant)["status"] == "pending"
    refused = client.post(
        f"/ops/merchants/{applicant}/refuse",
        data={"csrf_token": token, "reason": "We take shops in Berlin only for now."},
    )

    assert refused.status_code == 303
    found = reads.merchant(session, applicant)
    assert found["status"] == "refused"
    assert found["refusal_reason"] == "We take shops in Berlin only for now."
    page = client.get(f"/ops/merchants/{applicant}").get_data(as_text=True)
    assert "We take shops in Berlin only for now." in page
    [event] = audit.events(session, action="merchant.refuse").rows
    assert event["before"] == {"status": "pending", "refusal_reason": None}
    assert event["after"] == {
        "status": "refused",
        "refusal_reason": "We take shops in Berlin only for now.",
    }
    again = client.post(
        f"/ops/merchants/{applicant}/refuse", data={"csrf_token": token, "reason": "Again"}
    )
    shown = client.get(again.headers["Location"]).get_data(as_text=True)
    assert "Only a pending application can be refused." in shown


def test_a_merchant_is_suspended_then_reactivated_and_its_clients_follow(
    client: FlaskClient, session: Session
) -> None:
    shop = f.merchant(session, "Blumen Berg")
    till = f.client(session, shop, "purchases:write")
    public_id = reads.merchant_view(
        next(r for r in session.execute(reads.merchant_list()).all() if r.id == shop)
    )["id"]
    sign_in_as(client, session, "admin")

    page = client.get(f"/ops/merchants/{public_id}").get_data(as_text=True)
    assert till["client_id"] in page and "Working" in page
    token = csrf_token(client, f"/ops/merchants/{public_id}")
    client.post(f"/ops/merchants/{public_id}/suspend", data={"csrf_token": token})
    suspended = client.get(f"/ops/merchants/{public_id}").get_data(as_text=True)
    assert "Switched off" in suspended and "Reactivate" in suspended
    client.post(f"/ops/merchants/{public_id}/reactivate", data={"csrf_token": token})

    assert reads.merchant(session, public_id)["status"] == "active"
    logged = audit.events(session, target=f"merchant:{public_id}").rows
    assert [(e["action"], e["before"]["status"], e["after"]["status"]) for e in logged] == [
        ("merchant.approve", "suspended", "active"),
        ("merchant.suspend", "active", "suspended"),
    ]


def test_a_decision_posted_without_its_csrf_token_is_refused(
    client: FlaskClient, session: Session
) -> None:
    applicant = _apply(session)
    sign_in_as(client, session, "admin")
    answer = client.post(f"/ops/merchants/{applicant}/approve")
    assert answer.status_code == 400
    assert reads.merchant(session, applicant)["status"] == "pending"
    assert audit.events(session).rows == []


def test_an_unknown_merchant_is_a_404_page(client: FlaskClient, session: Session) -> None:
    sign_in_as(client, session, "admin")
    answer = client.get("/ops/merchants/mer_nobody")
    assert answer.status_code == 404 and answer.mimetype == "text/html"


def test_the_merchant_list_filters_by_status_and_pages(
    client: FlaskClient, session: Session
) -> None:
    for n in range(27):
        _apply(session, f"Shop {n:02}", f"shop{n}@example.org")
    sign_in_as(client, session, "support")

    first = client.get("/ops/merchants?status=pending").get_data(as_text=True)
    second = client.get("/ops/merchants?status=pending&page=2").get_data(as_text=True)
    active = client.get("/ops/merchants?status=active").get_data(as_text=True)

    assert "Shop 26" in first and "Shop 02" in first and "Shop 01" not in first
    assert "Shop 01" in second and "Shop 00" in second
    assert 'rel="next"' in first and 'rel="prev"' in second
    assert "Shop 26" not in active
