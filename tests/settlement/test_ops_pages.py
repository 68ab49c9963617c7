"""The operator console's settlement pages as finance staff use them (SPEC 3.9): settle a day and
see its positions, read the month's report with its two charts, download it as CSV and PDF, see
payments and the liability; support staff open none of them, and a form without its CSRF token
is refused."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime, timedelta

import pytest
from flask.testing import FlaskClient
from pypdf import PdfReader
from sqlalchemy.orm import Session

from coalition import audit
from settlement import closing, runs
from tests import factories as f
from tests.ops_helpers import csrf_token, sign_in_as

RUNS = "/ops/settlement/runs"
REPORT = "/ops/settlement/report"


def _a_month_of_trade(session: Session) -> None:
    """March 2026: Café Nord awards 80 points on the 2nd, its member spends 50 of them at
    Bäckerei Süd on the 3rd; both days settled."""
    cafe, bakery = f.merchant(session, "Café Nord"), f.merchant(session, "Bäckerei Süd")
    alice = f.member(session)
    f.purchase(session, alice, cafe, 80)
    f.redeem(session, alice, bakery, 50, now=f.T0 + timedelta(days=1))
    later = datetime(2026, 3, 5, 12, tzinfo=UTC)
    for day in (f.T0.date(), f.T0.date() + timedelta(days=1)):
        runs.settle(session, day, later)


@pytest.mark.both_backends  # the embedded default (`make run`) too
def test_finance_staff_settles_a_past_day_and_sees_its_positions(
    client: FlaskClient, session: Session
) -> None:
    cafe, alice = f.merchant(session, "Café Nord"), f.member(session)
    f.purchase(session, alice, cafe, 80)
    staff = sign_in_as(client, session, "finance")

    listed = client.get(RUNS).get_data(as_text=True)
    assert "No day is settled yet" in listed
    answer = client.post(
        RUNS, data={"business_date": "2026-03-02", "csrf_token": csrf_token(client, RUNS)}
    )
    assert answer.status_code == 303
    page = client.get(answer.headers["Location"])

    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Settlement of 2026-03-02" in html and "is settled for good" in html
    assert "Café Nord" in html
    row = re.search(r"Café Nord.*?</tr>", html, re.S)
    assert row is not None and "80" in row.group(0) and "1.00 EUR" in row.group(0)
    assert "2026-03-02" in client.get(RUNS).get_data(as_text=True)
    [event] = audit.events(session, action="settlement_run.request").rows
    assert event["actor_label"] == staff.email
    assert event["after"] == {"business_date": "2026-03-02", "kind": "final"}


def test_a_day_not_yet_begun_is_refused_on_the_form(client: FlaskClient, session: Session) -> None:
    sign_in_as(client, session, "admin")
    tomorrow = (datetime.now(UTC) + timedelta(days=2)).date().isoformat()

    answer = client.post(
        RUNS, data={"business_date": tomorrow, "csrf_token": csrf_token(client, RUNS)}
    )

    assert answer.status_code == 422
    assert "This day has not begun" in answer.get_data(as_text=True)
    assert audit.events(session, action="settlement_run.request").rows == []


def test_the_report_shows_both_charts_and_every_merchant(
    client: FlaskClient, session: Session
) -> None:
    _a_month_of_trade(session)
    sign_in_as(client, session, "finance")

    page = client.get(REPORT, query_string={"month": "2026-03"})

    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert html.count("<svg") == 2
    assert 'class="bar pays" data-name="Café Nord" data-net="1.00"' in html
    assert 'class="bar paid" data-name="Bäckerei Süd" data-net="-0.50"' in html
    assert 'data-points="50"' in html  # the heat map's cell of Café Nord's points at the bakery
    assert "2 of 31" in html
    assert "/ops/settlement/report.pdf?month=2026-03" in html


@pytest.mark.both_backends  # the embedded default (`make run`) too
def test_the_report_downloads_as_csv_and_as_a_pdf_naming_the_month_and_merchants(
    client: FlaskClient, session: Session
) -> None:
    _a_month_of_trade(session)
    sign_in_as(client, session, "admin")

    as_csv = client.get("/ops/settlement/report.csv?month=2026-03")
    as_pdf = client.get("/ops/settlement/report.pdf?month=2026-03")

    assert as_csv.mimetype == "text/csv"
    assert "settlement-report-2026-03.csv" in as_csv.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(as_csv.get_data(as_text=True), newline="")))
    named = {row[1]: row[-1] for row in rows if len(row) == 7 and row[0].startswith("mer_")}
    assert named == {"Café Nord": "1.00", "Bäckerei Süd": "-0.50"}
    assert as_pdf.mimetype == "application/pdf"
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(as_pdf.data)).pages)
    assert "March 2026" in text and "Café Nord" in text and "Bäckerei Süd" in text


def test_a_month_without_settled_days_says_what_to_do(
    client: FlaskClient, session: Session
) -> None:
    sign_in_as(client, session, "finance")

    html = client.get(REPORT, query_string={"month": "2026-04"}).get_data(as_text=True)

    assert "No day of April 2026 is settled yet" in html
    assert "Settle a day" in html and f'href="{RUNS}"' in html
    assert "<svg" not in html


def test_a_month_that_is_not_one_is_said_on_the_form(client: FlaskClient, session: Session) -> None:
    sign_in_as(client, session, "finance")

    answer = client.get(REPORT, query_string={"month": "2026-13"})

    assert answer.status_code == 422
    assert "A month as YYYY-MM." in answer.get_data(as_text=True)


def test_payments_and_liability_show_what_there_is(client: FlaskClient, session: Session) -> None:
    _a_month_of_trade(session)
    sign_in_as(client, session, "finance")

    payments = client.get("/ops/settlement/payments").get_data(as_text=True)
    liability = client.get("/ops/settlement/liability").get_data(as_text=True)

    assert "No payments yet" in payments
    assert "Café Nord" in liability and "Points outstanding" in liability
    assert re.search(r">\s*30\s*<", liability)  # 80 awarded, 50 spent


def test_a_stated_month_shows_its_payments_and_their_status(
    client: FlaskClient, session: Session
) -> None:
    _a_month_of_trade(session)
    closing.close(session, date(2026, 3, 1), date(2026, 3, 31), datetime(2026, 4, 1, 6, tzinfo=UTC))
    sign_in_as(client, session, "finance")

    html = client.get("/ops/settlement/payments?month=2026-03").get_data(as_text=True)
    waiting = client.get("/ops/settlement/payments?status=created").get_data(as_text=True)
    paid = client.get("/ops/settlement/payments?status=succeeded").get_data(as_text=True)

    cafe = re.search(r"Café Nord.*?</tr>", html, re.S)
    bakery = re.search(r"Bäckerei Süd.*?</tr>", html, re.S)
    assert cafe is not None and bakery is not None
    assert "Invoice to the merchant" in cafe.group(0) and "1.00 EUR" in cafe.group(0)
    assert "Transfer to the merchant" in bakery.group(0) and "0.50 EUR" in bakery.group(0)
    assert "Waiting" in cafe.group(0)
    assert "Café Nord" in waiting and "Bäckerei Süd" in waiting
    assert "No payment matches this filter" in paid


MONEY_PAGES = [
    RUNS,
    "/ops/settlement/runs/run_nope",
    REPORT,
    "/ops/settlement/report.csv?month=2026-03",
    "/ops/settlement/report.pdf?month=2026-03",
    "/ops/settlement/payments",
    "/ops/settlement/liability",
]


@pytest.mark.parametrize("path", MONEY_PAGES)
def test_support_staff_open_no_settlement_page(
    client: FlaskClient, session: Session, path: str
) -> None:
    sign_in_as(client, session, "support")

    answer = client.get(path)

    assert answer.status_code == 403
    assert answer.mimetype == "text/html" and "Not allowed" in answer.get_data(as_text=True)


def test_support_staff_cannot_start_a_run(client: FlaskClient, session: Session) -> None:
    sign_in_as(client, session, "support")
    token = csrf_token(client, "/ops/")

    answer = client.post(RUNS, data={"business_date": "2026-03-02", "csrf_token": token})

    assert answer.status_code == 403
    assert audit.events(session, action="settlement_run.request").rows == []


def test_a_run_started_without_its_csrf_token_is_refused(
    client: FlaskClient, session: Session
) -> None:
    sign_in_as(client, session, "finance")

    answer = client.post(RUNS, data={"business_date": "2026-03-02"})

    assert answer.status_code == 400
    assert "This form has expired" in answer.get_data(as_text=True)
    assert audit.events(session, action="settlement_run.request").rows == []


def test_a_signed_out_visitor_is_sent_to_sign_in(client: FlaskClient) -> None:
    answer = client.get(REPORT)

    assert answer.status_code == 302 and answer.headers["Location"].startswith("/ops/sign-in")


def test_the_report_names_the_month_in_the_staffs_language(
    client: FlaskClient, session: Session
) -> None:
    _a_month_of_trade(session)
    sign_in_as(client, session, "finance")

    page = client.get(REPORT, query_string={"month": "2026-03"}, headers={"Accept-Language": "ru"})

    assert page.status_code == 200
    assert '<html lang="ru">' in page.get_data(as_text=True)
    assert "март 2026" in page.get_data(as_text=True).lower()


def test_a_run_not_yet_done_says_so_and_reloads_itself(
    client: FlaskClient, session: Session
) -> None:
    queued = runs.request_run(session, f.T0.date(), datetime(2026, 3, 5, tzinfo=UTC))
    sign_in_as(client, session, "finance")

    html = client.get(f"{RUNS}/{queued.public_id}").get_data(as_text=True)

    assert "This run is being worked out" in html
    assert '<meta http-equiv="refresh" content="5">' in html
