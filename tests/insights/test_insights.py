"""Insights (issue 16) against a small coalition worked out by hand: every figure of a
merchant's insights and of the operator's, asserted exactly.

The coalition (the coalition's zone is Europe/Berlin; every moment is 10:00 UTC, the same
business date there). Merchants Alpha (A), Beta (B), Gamma (C); members m1 and m4 enrolled by A,
m2 enrolled by B, m3 and m5 joined online (no enrolling partner). Amounts in cents, one point a
euro unless said:

    p8   2025-12-10  m4 at A   50 pts  5000  (before the range; its lot expires 2026-03-01)
    p1   2026-01-10  m1 at A   10 pts  1000
    p5   2026-01-15  m3 at A   40 pts  4000
    p2   2026-01-20  m1 at B   20 pts  2000
    p4   2026-02-05  m2 at A   30 pts  3000
    p3   2026-02-15  m1 at B    5 pts   500
    R1   2026-02-16  m1 redeems 15 at A, soonest-expiring lots first (each lives 730 days): all
                     10 of p1's lot (A's), then 5 of p2's (B's)
    p9   2026-02-20  m4 at A   20 pts  2000
    E    2026-03-02  expiry: p8's 50 points (breakage)
    p10  2026-03-05  m5 at C   60 pts  6000
    p6   2026-03-10  m3 at A   10 pts  1000
    p7   2026-03-12  m3 at B    8 pts   800
    R2   2026-03-15  m3 redeems 8 at B: from lot p5 (A's)
    p11  2026-03-20  m5 at A    2 pts   200
    p12  2026-03-25  m2 at A    5 pts   500

The range is 2026-01-01 to 2026-03-31: months Jan, Feb, Mar. Every day with activity is
settled (final runs); prefunded terms: issue price 0.0125, point value 0.01."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from tests import factories

pytestmark = pytest.mark.both_backends

RANGE = "from=2026-01-01&to=2026-03-31"


def _curve(*shares: str) -> list[dict[str, object]]:
    return [
        {"customers_percent": p, "sales_share": s}
        for p, s in zip(range(0, 101, 10), ("0.0000", *shares), strict=True)
    ]


def test_alphas_insights_are_the_hand_worked_figures(
    client: FlaskClient, session: Session, coalition: dict[str, int]
) -> None:
    """Alpha. Purchases in the range: p1 1000, p5 4000, p4 3000, p9 2000, p6 1000, p11 200,
    p12 500: 7 purchases, 11,700 cents, customers m1..m5 (5); two purchases or more: m3 (p5,
    p6) and m2 (p4, p12): 2 of 5 = 0.4000. Basket 11,700 / 7 = 1,671.43 cents: 16.71.

    Won: first purchases at A in the range are m1 (Jan 10: joined at A, bought nowhere before:
    no), m3 (Jan 15: online, nothing before: no), m2 (Feb 5: joined at B: won; back on Mar 25),
    m5 (Mar 20: bought at C on Mar 5: won; never back). m4's first at A was in December. 2 won,
    1 came back.

    Cohorts (first purchase at A): Jan {m1, m3}, Feb {m2}, Mar {m5}. Active at A: Jan {m1, m3},
    Feb {m2, m4}, Mar {m3, m5, m2}. Jan: 2, Feb 0, Mar 1 (m3); Feb: 1, 1 (m2); Mar: 1.

    Concentration: m3 5000, m2 3500, m4 2000, m1 1000, m5 200 (n = 5, total 11,700). Top p %
    = the first ceil(5p/100): 10 %, 20 % -> 1 (5000/11700 = 0.42735 -> 0.4274), 30, 40 -> 2
    (8500 -> 0.72650 -> 0.7265), 50, 60 -> 3 (10500 -> 0.89744 -> 0.8974), 70, 80 -> 4 (11500 ->
    0.98291 -> 0.9829), 90, 100 -> 5 (1.0000).

    Points: issued 10 + 40 + 30 + 20 + 10 + 2 + 5 = 117; redeemed R1 15.

    Net by month (prefunded): Jan issued 50 -> owes 50 x 0.0125 = 0.625; Feb issued 50 ->
    0.625, redeemed 15 -> owed 0.15, net 0.475; Mar issued 17 -> 0.2125."""
    headers = factories.merchant_headers(session, coalition["a"], "transactions:read")
    response = client.get(f"/api/v1/insights?{RANGE}", headers=headers)
    assert response.status_code == 200, response.json
    assert response.json == {
        "from": "2026-01-01",
        "to": "2026-03-31",
        "currency": "EUR",
        "won": {"members": 2, "came_back": 1},
        "purchases": 7,
        "sales": {"amount": 11700, "currency": "EUR"},
        "customers": 5,
        "repeat_customers": 2,
        "repeat_rate": "0.4000",
        "average_basket": {"amount": "16.71", "currency": "EUR"},
        "cohorts": [
            {"month": "2026-01", "members": 2, "active": [2, 0, 1]},
            {"month": "2026-02", "members": 1, "active": [1, 1]},
            {"month": "2026-03", "members": 1, "active": [1]},
        ],
        "concentration": {
            "customers": 5,
            "top_20_share": "0.4274",
            "curve": _curve(
                "0.4274",
                "0.4274",
                "0.7265",
                "0.7265",
                "0.8974",
                "0.8974",
                "0.9829",
                "0.9829",
                "1.0000",
                "1.0000",
            ),
        },
        "points": {"issued": 117, "redeemed": 15},
        "net_by_month": [
            {
                "month": "2026-01",
                "owed": "0.625",
                "receivable": "0.00",
                "net": "0.625",
                "currency": "EUR",
            },
            {
                "month": "2026-02",
                "owed": "0.625",
                "receivable": "0.15",
                "net": "0.475",
                "currency": "EUR",
            },
            {
                "month": "2026-03",
                "owed": "0.2125",
                "receivable": "0.00",
                "net": "0.2125",
                "currency": "EUR",
            },
        ],
    }


BETA = {
    "from": "2026-01-01",
    "to": "2026-03-31",
    "currency": "EUR",
    "won": {"members": 2, "came_back": 1},
    "purchases": 3,
    "sales": {"amount": 3300, "currency": "EUR"},
    "customers": 2,
    "repeat_customers": 1,
    "repeat_rate": "0.5000",
    "average_basket": {"amount": "11.00", "currency": "EUR"},
    "cohorts": [
        {"month": "2026-01", "members": 1, "active": [1, 1, 0]},
        {"month": "2026-03", "members": 1, "active": [1]},
    ],
    "concentration": {
        "customers": 2,
        "top_20_share": "0.7576",
        "curve": _curve(*(["0.7576"] * 5), *(["1.0000"] * 5)),
    },
    "points": {"issued": 33, "redeemed": 8},
    "net_by_month": [
        {
            "month": "2026-01",
            "owed": "0.25",
            "receivable": "0.00",
            "net": "0.25",
            "currency": "EUR",
        },
        {
            "month": "2026-02",
            "owed": "0.0625",
            "receivable": "0.00",
            "net": "0.0625",
            "currency": "EUR",
        },
        {
            "month": "2026-03",
            "owed": "0.10",
            "receivable": "0.08",
            "net": "0.02",
            "currency": "EUR",
        },
    ],
}
"""Beta. Purchases p2 2000, p3 500, p7 800: 3, 3,300 cents, customers m1, m3; m1 twice: 1 of 2
= 0.5000; basket 1,100 cents = 11.00. Won: m1 (Jan 20, joined at A: won, back Feb 15), m3 (Mar
12, bought at A before: won, never back). Cohorts: Jan {m1} active Jan, Feb (p3), not Mar: 1, 1,
0; Mar {m3}: 1; no one's first was in February, so no February row. Concentration: m1 2500, m3
800 (n = 2): 10-50 % -> the first 1 (2500/3300 = 0.75758 -> 0.7576), 60-100 % -> 2 (1.0000).
Points: issued 20 + 5 + 8 = 33; redeemed R2 8. Net: Jan 20 x 0.0125 = 0.25; Feb 5 x 0.0125 =
0.0625; Mar 8 x 0.0125 = 0.10 owed, 8 x 0.01 = 0.08 receivable, net 0.02."""


def test_betas_insights_are_the_hand_worked_figures(
    client: FlaskClient, session: Session, coalition: dict[str, int]
) -> None:
    headers = factories.merchant_headers(session, coalition["b"], "transactions:read")
    response = client.get(f"/api/v1/insights?{RANGE}", headers=headers)
    assert response.status_code == 200, response.json
    assert response.json == BETA


def test_the_operators_insights_are_the_hand_worked_figures(
    client: FlaskClient, session: Session, coalition: dict[str, int]
) -> None:
    """The coalition. Purchases in the range: Alpha's 7, Beta's 3, Gamma's p10: 11, 21,000
    cents; customers m1..m5; two purchases or more anywhere: m1 (p1, p2, p3), m2 (p4, p12), m3
    (p5, p6, p7), m5 (p10, p11), not m4 (p9 only): 4 of 5 = 0.8000. Basket 21,000 / 11 =
    1,909.09 cents: 19.09. Won: Alpha 2 + Beta 2 + Gamma 0 (m5 joined online and bought there
    first) = 4, came back 1 + 1 = 2.

    Cohorts (first purchase anywhere): Jan {m1, m3}, Feb {m2}, Mar {m5} (m4's first was in
    December). Active anywhere: Jan {m1, m3}, Feb {m1, m2, m4}, Mar {m2, m3, m5}: Jan 2, 1 (m1),
    1 (m3); Feb 1, 1; Mar 1.

    Concentration: m5 6200, m3 5800, m1 3500, m2 3500 (tie: m1's account first), m4 2000; total
    21,000: 1 -> 0.29524 -> 0.2952, 2 -> 12000 -> 0.5714, 3 -> 15500 -> 0.73810 -> 0.7381, 4 ->
    19000 -> 0.90476 -> 0.9048, 5 -> 1.0000.

    Points: issued 117 + 33 + 60 = 210, redeemed 15 + 8 = 23. Net: Jan 0.625 + 0.25 = 0.875;
    Feb owed 0.625 + 0.0625 = 0.6875, receivable 0.15, net 0.5375; Mar owed 0.2125 + 0.10 +
    Gamma's 60 x 0.0125 = 0.75: 1.0625, receivable 0.08, net 0.9825.

    Liability now: lots hold 50 + 210 = 260 awarded, less 23 redeemed, less 50 expired: 187
    points, worth 1.87. Breakage: 50 (p8's lot, expired on 2026-03-02), 0.50, in the range and
    to date.

    Balance of trade: R1 took 10 of Alpha's own (not trade) and 5 of Beta's at Alpha; R2 took 8
    of Alpha's at Beta. Alpha imported 5 (0.05), exported 8 (0.08): -3, -0.03; Beta the
    mirror. Gamma's points travelled nowhere: no row."""
    headers = factories.operator_headers(session)
    response = client.get(f"/api/v1/ops/insights?{RANGE}", headers=headers)
    assert response.status_code == 200, response.json
    assert response.json == {
        "coalition": {
            "from": "2026-01-01",
            "to": "2026-03-31",
            "currency": "EUR",
            "won": {"members": 4, "came_back": 2},
            "purchases": 11,
            "sales": {"amount": 21000, "currency": "EUR"},
            "customers": 5,
            "repeat_customers": 4,
            "repeat_rate": "0.8000",
            "average_basket": {"amount": "19.09", "currency": "EUR"},
            "cohorts": [
                {"month": "2026-01", "members": 2, "active": [2, 1, 1]},
                {"month": "2026-02", "members": 1, "active": [1, 1]},
                {"month": "2026-03", "members": 1, "active": [1]},
            ],
            "concentration": {
                "customers": 5,
                "top_20_share": "0.2952",
                "curve": _curve(
                    "0.2952",
                    "0.2952",
                    "0.5714",
                    "0.5714",
                    "0.7381",
                    "0.7381",
                    "0.9048",
                    "0.9048",
                    "1.0000",
                    "1.0000",
                ),
            },
            "points": {"issued": 210, "redeemed": 23},
            "net_by_month": [
                {
                    "month": "2026-01",
                    "owed": "0.875",
                    "receivable": "0.00",
                    "net": "0.875",
                    "currency": "EUR",
                },
                {
                    "month": "2026-02",
                    "owed": "0.6875",
                    "receivable": "0.15",
                    "net": "0.5375",
                    "currency": "EUR",
                },
                {
                    "month": "2026-03",
                    "owed": "1.0625",
                    "receivable": "0.08",
                    "net": "0.9825",
                    "currency": "EUR",
                },
            ],
        },
        "as_of": None,  # computed for this request: no snapshot of this range
        "partner": None,
        "liability": {
            "outstanding_points": 187,
            "value": {"amount": 187, "currency": "EUR"},
            "breakage_to_date": {"points": 50, "value": {"amount": 50, "currency": "EUR"}},
        },
        "breakage": {"points": 50, "value": {"amount": 50, "currency": "EUR"}},
        "balance_of_trade": [
            {
                "merchant": {
                    "id": response.json["balance_of_trade"][0]["merchant"]["id"],
                    "name": "Alpha",
                },
                "imported_points": 5,
                "imported_value": "0.05",
                "exported_points": 8,
                "exported_value": "0.08",
                "balance_points": -3,
                "balance_value": "-0.03",
                "currency": "EUR",
            },
            {
                "merchant": {
                    "id": response.json["balance_of_trade"][1]["merchant"]["id"],
                    "name": "Beta",
                },
                "imported_points": 8,
                "imported_value": "0.08",
                "exported_points": 5,
                "exported_value": "0.05",
                "balance_points": 3,
                "balance_value": "0.03",
                "currency": "EUR",
            },
        ],
    }


def test_the_operator_picks_a_partner_and_sees_its_own_figures(
    client: FlaskClient, session: Session, coalition: dict[str, int]
) -> None:
    beta = client.get(
        f"/api/v1/insights?{RANGE}",
        headers=factories.merchant_headers(session, coalition["b"], "transactions:read"),
    ).json
    operator = factories.operator_headers(session)
    ids = client.get(f"/api/v1/ops/insights?{RANGE}", headers=operator).json["balance_of_trade"]
    beta_id = ids[1]["merchant"]["id"]
    picked = client.get(f"/api/v1/ops/insights?{RANGE}&merchant={beta_id}", headers=operator)
    assert picked.status_code == 200
    assert picked.json["partner"] == {"merchant": {"id": beta_id, "name": "Beta"}, **BETA}
    assert beta == BETA
    unknown = client.get(f"/api/v1/ops/insights?{RANGE}&merchant=mer_nobody", headers=operator)
    assert (unknown.status_code, unknown.json["code"]) == (404, "not_found")


@pytest.mark.parametrize(
    "query",
    [
        "from=2026-03-01&to=2026-02-01",  # backwards
        "from=2024-01-01&to=2026-01-01",  # 25 months
        "from=2026-02-30",  # no such date
        "from=2026-01-01&merchant=mer_x",  # a merchant may not name another
    ],
)
def test_a_bad_range_is_a_problem_and_answers_nothing(
    client: FlaskClient, session: Session, coalition: dict[str, int], query: str
) -> None:
    headers = factories.merchant_headers(session, coalition["a"], "transactions:read")
    response = client.get(f"/api/v1/insights?{query}", headers=headers)
    assert response.status_code == 422
    assert response.json["code"] == "validation_error"
    assert response.mimetype == "application/problem+json"


def test_the_operators_bad_range_is_a_problem_too(
    client: FlaskClient, session: Session, coalition: dict[str, int]
) -> None:
    response = client.get(
        "/api/v1/ops/insights?from=2026-03-01&to=2026-02-01",
        headers=factories.operator_headers(session),
    )
    assert (response.status_code, response.json["code"]) == (422, "validation_error")
    assert response.json["errors"] == {"from": ["must be on or before `to`"]}


def test_insights_need_the_transactions_read_scope(
    client: FlaskClient, session: Session, coalition: dict[str, int]
) -> None:
    headers = factories.merchant_headers(session, coalition["a"], "purchases:write")
    response = client.get(f"/api/v1/insights?{RANGE}", headers=headers)
    assert response.status_code == 403


def test_a_merchants_insights_reveal_no_other_shop(
    client: FlaskClient, session: Session, coalition: dict[str, int]
) -> None:
    """Gamma's only customer, m5, later bought at Alpha: Gamma's figures count that member once,
    with only Gamma's purchase (6,000), and name no other shop nor its amounts; Alpha's name
    no other shop either. What Alpha learns of Gamma is only that one of its members was won."""
    gamma = client.get(
        f"/api/v1/insights?{RANGE}",
        headers=factories.merchant_headers(session, coalition["c"], "transactions:read"),
    )
    assert gamma.json["sales"] == {"amount": 6000, "currency": "EUR"}
    assert gamma.json["customers"] == 1
    assert gamma.json["won"] == {"members": 0, "came_back": 0}
    assert gamma.json["points"] == {"issued": 60, "redeemed": 0}
    assert gamma.json["cohorts"] == [{"month": "2026-03", "members": 1, "active": [1]}]
    assert [m["net"] for m in gamma.json["net_by_month"]] == ["0.00", "0.00", "0.75"]
    alpha = client.get(
        f"/api/v1/insights?{RANGE}",
        headers=factories.merchant_headers(session, coalition["a"], "transactions:read"),
    )
    seen = gamma.get_data(as_text=True) + alpha.get_data(as_text=True)
    assert "mer_" not in seen and "mbr_" not in seen
    assert not any(name in seen for name in ("Alpha", "Beta", "Gamma"))
    assert alpha.json["sales"] == {"amount": 11700, "currency": "EUR"}  # none of Gamma's 6,000


def test_the_nightly_job_keeps_the_operators_default_range_and_the_api_answers_from_it(
    app, client: FlaskClient, session: Session, coalition: dict[str, int]
) -> None:
    """Decision 342: with no range, the operator's view is the 12 months to yesterday; once the
    night's job has run, the coalition's figures come from its snapshot (`as_of` says when),
    the same as computed live for that range, the partner's and the liability still live."""
    from coalition import clock
    from insights import services, tasks

    zone = app.config["COALITION_TIMEZONE"]
    now = clock.utcnow()
    span = services.operator_default(clock.business_date(now, zone), zone)
    headers = factories.operator_headers(session)
    explicit = f"from={span.first.isoformat()}&to={span.last.isoformat()}"
    live = client.get(f"/api/v1/ops/insights?{explicit}", headers=headers).json
    before = client.get("/api/v1/ops/insights", headers=headers).json
    assert before == live and before["as_of"] is None

    tasks.precompute_insights(span.last, now)
    kept = client.get("/api/v1/ops/insights", headers=headers).json
    assert kept["as_of"] is not None
    assert kept | {"as_of": None} == live
    assert kept["coalition"]["from"] == span.first.isoformat()
