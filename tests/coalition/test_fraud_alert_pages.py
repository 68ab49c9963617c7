"""The console's fraud report (`/ops/fraud`): staff read each alert's evidence as a person would
(merchant names, member ids, figures); admin and support staff dismiss one with a reason or
confirm it, audited; finance staff only read; nobody else opens the page."""

from __future__ import annotations

from datetime import timedelta

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from coalition import audit, tenancy
from coalition.fraud.models import fraud_alerts
from coalition.members.models import Member
from tests import factories as f
from tests.coalition.test_fraud_report import _run, _self_dealt
from tests.ops_helpers import csrf_token, sign_in_as


def _alert(session: Session) -> tuple[str, list[str]]:
    dealt = _self_dealt(session, f.merchant(session, "Späti Süd"), 5, timedelta(minutes=5))
    _run(session)
    with tenancy.acting_as(tenancy.SYSTEM, session):
        public = session.execute(select(fraud_alerts.c.public_id)).scalar_one()
    members = [
        session.execute(select(Member.public_id).where(Member.id == m)).scalar_one() for m in dealt
    ]
    return public, members


def _state(session: Session, public: str) -> tuple[str, str | None]:
    with tenancy.acting_as(tenancy.SYSTEM, session):
        row = session.execute(
            select(fraud_alerts.c.state, fraud_alerts.c.reason).where(
                fraud_alerts.c.public_id == public
            )
        ).one()
    return row.state, row.reason


def test_support_reads_an_alerts_evidence_and_dismisses_it_with_a_reason(
    client: FlaskClient, session: Session
) -> None:
    public, members = _alert(session)
    staff = sign_in_as(client, session, "support")

    html = client.get("/ops/fraud").get_data(as_text=True)

    assert "Self-dealing" in html and "Späti Süd" in html
    assert "5 members, 100 % of the day&#39;s redeemed points" in html
    assert all(member in html for member in members)
    assert 'href="/ops/fraud"' in html and "Open (1)" in html
    token = csrf_token(client, "/ops/fraud")
    answer = client.post(
        f"/ops/fraud/{public}/dismiss",
        data={"csrf_token": token, "reason": "The owner's family,\nchecked by phone"},
    )

    assert answer.status_code == 303
    assert _state(session, public) == ("dismissed", "The owner's family, checked by phone")
    [event] = audit.events(session, target=f"fraud_alert:{public}").rows
    assert (event["action"], event["actor_label"]) == ("fraud_alert.dismiss", staff.email)
    dismissed = client.get("/ops/fraud?state=dismissed").get_data(as_text=True)
    assert "checked by phone" in dismissed and staff.email in dismissed


def test_a_dismissal_without_a_reason_is_refused_and_the_alert_stays_open(
    client: FlaskClient, session: Session
) -> None:
    public, _ = _alert(session)
    sign_in_as(client, session, "admin")
    token = csrf_token(client, "/ops/fraud")

    answer = client.post(f"/ops/fraud/{public}/dismiss", data={"csrf_token": token, "reason": " "})

    assert answer.status_code == 422
    assert "Say why you dismiss it." in answer.get_data(as_text=True)
    assert _state(session, public) == ("open", None)
    assert audit.events(session).rows == []


def test_admin_confirms_an_alert_once(client: FlaskClient, session: Session) -> None:
    public, _ = _alert(session)
    sign_in_as(client, session, "admin")
    token = csrf_token(client, "/ops/fraud")

    first = client.post(f"/ops/fraud/{public}/confirm", data={"csrf_token": token})
    second = client.post(f"/ops/fraud/{public}/confirm", data={"csrf_token": token})

    assert first.status_code == second.status_code == 303
    assert _state(session, public) == ("confirmed", None)
    assert [e["action"] for e in audit.events(session).rows] == ["fraud_alert.confirm"]
    page = client.get("/ops/fraud?state=confirmed").get_data(as_text=True)
    assert "Confirmed (1)" in page and "Späti Süd" in page


def test_a_decision_without_the_forms_token_changes_nothing(
    client: FlaskClient, session: Session
) -> None:
    public, _ = _alert(session)
    sign_in_as(client, session, "admin")

    answer = client.post(f"/ops/fraud/{public}/confirm", data={})

    assert answer.status_code in (400, 303)
    assert _state(session, public) == ("open", None)


def test_finance_reads_the_report_but_may_not_decide(client: FlaskClient, session: Session) -> None:
    public, _ = _alert(session)
    sign_in_as(client, session, "finance")

    html = client.get("/ops/fraud").get_data(as_text=True)
    token = csrf_token(client, "/ops/fraud/events")
    answer = client.post(f"/ops/fraud/{public}/confirm", data={"csrf_token": token})

    assert "Späti Süd" in html and "Confirm as fraud" not in html
    assert answer.status_code == 403
    assert _state(session, public) == ("open", None)


def test_a_signed_out_visitor_is_sent_to_sign_in(client: FlaskClient, session: Session) -> None:
    _alert(session)
    session.commit()

    answer = client.get("/ops/fraud")

    assert answer.status_code in (302, 303) and "/ops/sign-in" in answer.headers["Location"]


def test_with_no_alert_the_page_says_what_will_appear(
    client: FlaskClient, session: Session
) -> None:
    sign_in_as(client, session, "support")

    html = client.get("/ops/fraud").get_data(as_text=True)

    assert "No alert in this state" in html
    assert client.get("/ops/fraud?state=maybe").status_code == 404
