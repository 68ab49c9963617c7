"""The bad-input table of QUALITY.md: wrong types, missing fields, negative or huge numbers,
unknown enums, a bad currency, malformed JSON, oversized bodies and unicode edge cases. Each
row gets a problem response with its status and code, and writes nothing."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from coalition import tenancy
from coalition.extensions import db
from coalition.members.models import Member
from coalition.oauth import scopes
from coalition.web.access import policy_of
from coalition.web.api import PageArgs
from tests import factories

HUGE = 10**30
MIB = 1024 * 1024
# Past Python's limit on converting digits to an int (4,300 digits by default).
LONG_INTEGER = b"1" * 5000


@dataclass(frozen=True)
class Row:
    name: str
    path: str
    body: Any = None  # JSON, unless `raw` is given
    raw: bytes | None = None
    content_type: str = "application/json"
    status: int = 422
    code: str = "validation_error"
    field: str | None = None  # the field `errors` must name
    caller: str = "merchant"
    method: str = "POST"
    headers: tuple[tuple[str, str], ...] = ()


def purchase(**changes: Any) -> dict[str, Any]:
    body = {"member": "CARD", "amount": 1250, "currency": "EUR", "external_id": "r-1"}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


def redemption(**changes: Any) -> dict[str, Any]:
    body = {"member": "CARD", "code": "CODE", "points": 10, "external_id": "x-1"}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


SIGNUP = {"email": "new@member.example", "password": "long enough password"}

ROWS = [
    # wrong types
    Row("amount as a string", "/api/v1/purchases", purchase(amount="12.50"), field="amount"),
    Row("amount as a float", "/api/v1/purchases", purchase(amount=12.5), field="amount"),
    Row("amount as a boolean", "/api/v1/purchases", purchase(amount=True), field="amount"),
    Row("member as a number", "/api/v1/purchases", purchase(member=42), field="member"),
    Row("points as a string", "/api/v1/redemptions", redemption(points="10"), field="points"),
    Row("items not a list", "/api/v1/purchases", purchase(items={"sku": "a"}), field="items"),
    Row(
        "items adding up to less",
        "/api/v1/purchases",
        purchase(items=[{"sku": "a", "amount": 600}, {"sku": "b", "amount": 500}]),
        field="items",
    ),
    Row(
        "items adding up to more",
        "/api/v1/purchases",
        purchase(items=[{"sku": "a", "amount": 1250, "quantity": 2}, {"sku": "b", "amount": 1}]),
        field="items",
    ),
    Row("body an array", "/api/v1/purchases", [purchase()]),
    Row("body a number", "/api/v1/purchases", 7),
    # missing fields
    Row("no amount", "/api/v1/purchases", purchase(amount=...), field="amount"),
    Row("no external id", "/api/v1/purchases", purchase(external_id=...), field="external_id"),
    Row("no points", "/api/v1/redemptions", redemption(points=...), field="points"),
    Row("empty body", "/api/v1/purchases", raw=b"", status=400, code="malformed_json"),
    Row("no body at all", "/api/v1/members", status=400, code="malformed_json"),
    Row(
        "enrolment as a form",
        "/api/v1/members",
        raw=b"name=Eve&email=eve%40example.org",
        content_type="application/x-www-form-urlencoded",
        status=415,
        code="unsupported_media_type",
    ),
    Row(
        "no password",
        "/api/v1/member-signups",
        {"email": "a@b.example"},
        field="password",
        caller="none",
    ),
    # negative or huge numbers
    Row("negative amount", "/api/v1/purchases", purchase(amount=-100), field="amount"),
    Row("zero amount", "/api/v1/purchases", purchase(amount=0), field="amount"),
    Row("huge amount", "/api/v1/purchases", purchase(amount=HUGE), field="amount"),
    Row("negative points", "/api/v1/redemptions", redemption(points=-5), field="points"),
    Row("huge points", "/api/v1/redemptions", redemption(points=HUGE), field="points"),
    Row(
        "hold for 8 days",
        "/api/v1/holds",
        {"member": "CARD", "code": "CODE", "points": 5, "ttl_seconds": 8 * 86400},
        field="ttl_seconds",
    ),
    Row("page of 501", "/api/v1/transactions?limit=501", method="GET", field="limit"),
    Row("negative page", "/api/v1/transactions?limit=-1", method="GET", field="limit"),
    Row("no such date", "/api/v1/transactions?since=2026-02-30", method="GET", field="since"),
    Row(
        "the calendar's first moment, east of UTC",
        "/api/v1/transactions?until=0001-01-01T00:00:00%2B14:00",
        method="GET",
        field="until",
    ),
    Row(
        "insights backwards",
        "/api/v1/insights?from=2026-03-01&to=2026-02-01",
        method="GET",
        field="from",
    ),
    Row(
        "insights over 24 months",
        "/api/v1/insights?from=2024-01-01&to=2026-01-01",
        method="GET",
        field="to",
    ),
    Row("insights on no such date", "/api/v1/insights?to=2026-02-30", method="GET", field="to"),
    Row(
        "a merchant names a partner",
        "/api/v1/insights?merchant=mer_x",
        method="GET",
        field="merchant",
    ),
    # unknown enums and fields a caller must not set (S4)
    Row("unknown type filter", "/api/v1/transactions?type=gift", method="GET", field="type"),
    Row(
        "unknown query parameter",
        "/api/v1/transactions?merchant_id=1",
        method="GET",
        field="merchant_id",
    ),
    Row("sets the balance", "/api/v1/members", {"name": "Eve", "balance": 10**6}, field="balance"),
    Row("sets the tier", "/api/v1/members", {"name": "Eve", "tier": "Platinum"}, field="tier"),
    Row("sets the merchant", "/api/v1/purchases", purchase(merchant_id=2), field="merchant_id"),
    Row(
        "sets a status",
        "/api/v1/merchant-applications",
        {"status": "active"},
        field="status",
        caller="none",
    ),
    # bad currency
    Row(
        "another currency",
        "/api/v1/purchases",
        purchase(currency="USD"),
        code="unsupported_currency",
        field="currency",
    ),
    Row("lower-case currency", "/api/v1/purchases", purchase(currency="eur"), field="currency"),
    Row("no such currency", "/api/v1/purchases", purchase(currency="EURO"), field="currency"),
    # malformed JSON
    Row(
        "truncated JSON",
        "/api/v1/purchases",
        raw=b'{"amount": 12',
        status=400,
        code="malformed_json",
    ),
    Row(
        "single quotes",
        "/api/v1/purchases",
        raw=b"{'amount': 12}",
        status=400,
        code="malformed_json",
    ),
    Row(
        "not UTF-8",
        "/api/v1/purchases",
        raw=b'{"member": "\xff\xfe"}',
        status=400,
        code="malformed_json",
    ),
    Row(
        "nested too deep",
        "/api/v1/purchases",
        raw=b"[" * 100_000,
        status=400,
        code="malformed_json",
    ),
    Row(
        "integer of 5,000 digits",
        "/api/v1/purchases",
        raw=b'{"member": "CARD", "amount": ' + LONG_INTEGER + b', "currency": "EUR"}',
        status=400,
        code="malformed_json",
    ),
    Row(
        "integer of 5,000 digits, with an Idempotency-Key",
        "/api/v1/purchases",
        raw=b'{"member": "CARD", "amount": ' + LONG_INTEGER + b', "currency": "EUR"}',
        status=400,
        code="malformed_json",
        headers=(("Idempotency-Key", "long-integer"),),
    ),
    Row(
        "integer of 5,000 digits in a sign-up",
        "/api/v1/member-signups",
        raw=b'{"email": "a@b.example", "password": ' + LONG_INTEGER + b"}",
        status=400,
        code="malformed_json",
        caller="none",
    ),
    Row(
        "integer of 5,000 digits in a batch",
        "/api/v1/purchases/batch",
        raw=b'[{"member": "CARD", "amount": ' + LONG_INTEGER + b"}]",
        status=400,
        code="malformed_json",
    ),
    Row(
        "a key twice",
        "/api/v1/purchases",
        raw=b'{"member": "CARD", "amount": 100, "amount": 100000, "currency": "EUR",'
        b' "external_id": "twice"}',
        status=400,
        code="malformed_json",
    ),
    Row(
        "a key twice in an item",
        "/api/v1/purchases",
        raw=b'{"member": "CARD", "amount": 100, "currency": "EUR", "external_id": "twice",'
        b' "items": [{"sku": "a", "amount": 100, "amount": 5}]}',
        status=400,
        code="malformed_json",
    ),
    Row(
        "a key twice in a sign-up",
        "/api/v1/member-signups",
        raw=b'{"email": "a@b.example", "email": "c@d.example", "password": "long enough pw"}',
        status=400,
        code="malformed_json",
        caller="none",
    ),
    Row(
        "NaN amount",
        "/api/v1/purchases",
        raw=b'{"member": "CARD", "amount": NaN, "currency": "EUR", "external_id": "n"}',
        field="amount",
    ),
    Row(
        "batch line garbage",
        "/api/v1/purchases/batch",
        raw=b"{not json",
        content_type="application/x-ndjson",
        status=200,
        code="",
    ),
    # oversized bodies
    Row(
        "body over 10 MiB",
        "/api/v1/purchases",
        raw=b'{"pad": "' + b"x" * (10 * MIB) + b'"}',
        status=413,
        code="payload_too_large",
    ),
    Row(
        "batch over 1,000 lines",
        "/api/v1/purchases/batch",
        [purchase(external_id=f"b{n}") for n in range(1001)],
        status=413,
        code="batch_too_large",
    ),
    Row(
        "external id of 10,000 characters",
        "/api/v1/purchases",
        purchase(external_id="r" * 10_000),
        field="external_id",
    ),
    # unicode edge cases
    Row(
        "NUL in the external id",
        "/api/v1/purchases",
        purchase(external_id="r\u0000"),
        field="external_id",
    ),
    Row(
        "lone surrogate",
        "/api/v1/purchases",
        raw=b'{"member": "CARD", "amount": 5, "currency": "EUR", "external_id": "\\ud800"}',
        field="external_id",
    ),
    Row(
        "NUL in a name",
        "/api/v1/member-signups",
        {**SIGNUP, "name": "Eve\u0000"},
        field="name",
        caller="none",
    ),
    Row(
        "email with a space",
        "/api/v1/member-signups",
        {**SIGNUP, "email": "e ve@x.example"},
        field="email",
        caller="none",
    ),
    Row(
        "right-to-left override in a card",
        "/api/v1/purchases",
        purchase(member="6375\u202e1234"),
        status=404,
        code="not_found",
    ),
    Row(
        "a card with dots between its groups",
        "/api/v1/purchases",
        purchase(member="6375.0000.0000.0000"),
        status=404,
        code="not_found",
    ),
    Row(
        "full-width digits as a card",
        "/api/v1/purchases",
        purchase(member="".join(chr(0xFF10 + int(d)) for d in "6375000000000000")),
        status=404,
        code="not_found",
    ),
]


def _snapshot(session: Session) -> dict[str, int]:
    with tenancy.acting_as(tenancy.SYSTEM, session):
        return {
            t.name: session.execute(text(f'SELECT count(*) FROM "{t.name}"')).scalar_one()
            for t in db.metadata.sorted_tables
            if t.name != "idempotency_keys"
        }


@pytest.fixture
def world(session: Session) -> dict[str, Any]:
    shop = factories.merchant(session)
    member = factories.member(session)
    factories.purchase(session, member, shop, 500)
    card = session.get(Member, member).card_number  # type: ignore[union-attr]
    return {"card": card, "merchant": factories.merchant_headers(session, shop)}


def _fill(value: Any, card: str) -> Any:
    if isinstance(value, str):
        return value.replace("CARD", card).replace("CODE", "000000")
    if isinstance(value, list):
        return [_fill(v, card) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, card) for k, v in value.items()}
    return value


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_bad_input_gets_a_problem_and_writes_nothing(
    client: FlaskClient, session: Session, world: dict[str, Any], row: Row
) -> None:
    headers = dict(world["merchant"]) if row.caller == "merchant" else {}
    headers.update(row.headers)
    before = _snapshot(session)
    if row.raw is not None:
        raw = row.raw.replace(b"CARD", world["card"].encode())
        response = client.open(
            row.path, method=row.method, data=raw, content_type=row.content_type, headers=headers
        )
    elif row.body is None:
        response = client.open(row.path, method=row.method, headers=headers)
    else:
        response = client.open(
            row.path, method=row.method, json=_fill(row.body, world["card"]), headers=headers
        )

    assert response.status_code == row.status, response.data[:300]
    if row.status == 200:  # a batch answers per line: the bad line is refused on its own
        [line] = response.json["results"]
        assert (line["status"], line["body"]["code"]) == (400, "malformed_json")
    else:
        assert response.mimetype == "application/problem+json"
        assert response.json["code"] == row.code
        assert response.json["status"] == row.status
        assert "Traceback" not in response.get_data(as_text=True)
        if row.field is not None:
            assert row.field in response.json.get("errors", {}), response.json
    assert _snapshot(session) == before


# Every route that takes a JSON body, read from the URL map and the OpenAPI document, so that a
# new route is covered the day it is added.


@dataclass(frozen=True)
class BodyRoute:
    method: str
    url: str
    caller: str  # the token kind the route takes first, or "none" for a public route
    body_required: bool

    def __str__(self) -> str:
        return f"{self.method} {self.url}"


def json_body_routes(app: Flask, client: FlaskClient) -> list[BodyRoute]:
    document = client.get("/api/v1/openapi.json").json
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/"):
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        for method in sorted((rule.methods or set()) & {"POST", "PUT", "PATCH"}):
            body = document["paths"][path][method.lower()].get("requestBody")
            if body is None or "application/json" not in body["content"]:
                continue
            policy = policy_of(app, rule.endpoint)
            assert policy is not None
            caller = "none" if policy.public else policy.kinds[0]
            # Any id will do: the body is read before the route looks anything up.
            url = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"x_\1", rule.rule)
            found.append(BodyRoute(method, url, caller, bool(body.get("required"))))
    return found


@pytest.fixture
def callers(session: Session, world: dict[str, Any]) -> dict[str, dict[str, str]]:
    shop = factories.merchant(session, "Another shop")
    return {
        "none": {},
        "merchant": world["merchant"],
        # Every member scope, so that each member route reads its body before anything else.
        "member": factories.member_headers(
            session, shop, factories.member(session), " ".join(sorted(scopes.MEMBER_SCOPES))
        ),
        "operator": factories.operator_headers(session),
    }


def test_json_body_routes_are_found(app: Flask, client: FlaskClient) -> None:
    routes = {str(route) for route in json_body_routes(app, client)}
    assert {"POST /api/v1/purchases", "POST /api/v1/member-signups"} <= routes
    assert len(routes) >= 10


def test_every_json_body_refuses_an_integer_too_long_to_read(
    app: Flask, client: FlaskClient, session: Session, callers: dict[str, dict[str, str]]
) -> None:
    before = _snapshot(session)
    wrong = {}
    for route in json_body_routes(app, client):
        response = client.open(
            route.url,
            method=route.method,
            data=b'{"amount": ' + LONG_INTEGER + b"}",
            content_type="application/json",
            headers=callers[route.caller],
        )
        got = (response.status_code, (response.json or {}).get("code"))
        if got != (400, "malformed_json"):
            wrong[str(route)] = got
    assert wrong == {}
    assert _snapshot(session) == before


# Every paginated list, read from the URL map: the routes whose query arguments are a page's.


def paginated_routes(app: Flask) -> list[tuple[str, str]]:
    """(path, token kind) of every list that takes `?cursor=`."""
    found = []
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        parameters = getattr(view, "_apidoc", {}).get("arguments", {}).get("parameters", [])
        for parameter in parameters:
            schema = parameter["schema"]
            schema = schema if isinstance(schema, type) else type(schema)
            if parameter["in"] == "query" and issubclass(schema, PageArgs):
                policy = policy_of(app, rule.endpoint)
                assert policy is not None and not policy.public
                found.append((rule.rule, policy.kinds[0]))
    return found


def _unsigned(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


FORGED_CURSORS = {
    "an id beyond 64 bits": _unsigned("c1:99999999999999999999999"),
    "an id of our own making": _unsigned("c1:5"),
    "a negative id": _unsigned("c1:-1"),
    "not base64": "%%%",
    "NUL": "%00",
}


def test_paginated_routes_are_found(app: Flask) -> None:
    paths = {path for path, _ in paginated_routes(app)}
    assert {"/api/v1/transactions", "/api/v1/me/transactions", "/api/v1/ops/merchants"} <= paths
    assert len(paths) >= 6


@pytest.mark.parametrize("forged", list(FORGED_CURSORS.values()), ids=list(FORGED_CURSORS))
def test_every_list_refuses_a_cursor_it_did_not_give_out(
    app: Flask, client: FlaskClient, callers: dict[str, dict[str, str]], forged: str
) -> None:
    wrong = {}
    for path, kind in paginated_routes(app):
        # Any id will do in a list's path (an endpoint's deliveries): the cursor is read first.
        url = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"x_\1", path)
        response = client.get(f"{url}?cursor={forged}", headers=callers[kind])
        body = response.json or {}
        if (response.status_code, body.get("code")) != (422, "validation_error") or (
            "cursor" not in body.get("errors", {})
        ):
            wrong[path] = (response.status_code, body.get("code"))
    assert wrong == {}


def test_a_cursor_works_only_on_the_list_that_gave_it_out(
    client: FlaskClient, session: Session, callers: dict[str, dict[str, str]]
) -> None:
    for name in ("A", "B", "C"):
        factories.merchant(session, name)
    operator = callers["operator"]
    first = client.get("/api/v1/ops/merchants?limit=1", headers=operator).json
    cursor = first["next_cursor"]

    second = client.get(f"/api/v1/ops/merchants?limit=1&cursor={cursor}", headers=operator)
    elsewhere = client.get(f"/api/v1/ops/settlement-runs?cursor={cursor}", headers=operator)

    assert second.status_code == 200 and second.json["data"] != first["data"]
    assert elsewhere.status_code == 422
    assert "cursor" in elsewhere.json["errors"]


# Every route with an id in its path, read from the URL map.

JUNK_PATH_IDS = {
    "NUL": "%00",
    "NUL after an id": "mer_abc%00",
    "a control character": "%1b",
    "not UTF-8": "%ff%fe",
    "a right-to-left override": "%E2%80%AE6375",
    # Longer than any id, shorter than a URL the app refuses whole (414, request_limits).
    "500 characters": "m" * 500,
}


@pytest.mark.parametrize("junk", list(JUNK_PATH_IDS.values()), ids=list(JUNK_PATH_IDS))
def test_every_route_with_a_path_id_answers_junk_with_not_found(
    app: Flask, client: FlaskClient, session: Session, callers: dict[str, dict[str, str]], junk: str
) -> None:
    before = _snapshot(session)
    wrong, tried = {}, 0
    pages = app.extensions["coalition.faces"]  # HTML pages: each face's own tests
    for rule in app.url_map.iter_rules():
        if not rule.arguments or rule.rule.startswith(("/static/", "/api/v1/docs/")):
            continue
        if rule.endpoint.split(".", 1)[0] in pages:
            continue
        policy = policy_of(app, rule.endpoint)
        assert policy is not None
        headers = callers["none" if policy.public else policy.kinds[0]]
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            url = re.sub(r"<(?:[^:>]+:)?([^>]+)>", junk, rule.rule)
            response = client.open(url, method=method, headers=headers, json={})
            tried += 1
            got = (response.status_code, response.mimetype, (response.json or {}).get("code"))
            if got != (404, "application/problem+json", "not_found"):
                wrong[f"{method} {rule.rule}"] = got
    assert wrong == {}
    assert tried >= 15
    assert _snapshot(session) == before


def test_every_json_body_route_refuses_another_content_type_or_no_body(
    app: Flask, client: FlaskClient, session: Session, callers: dict[str, dict[str, str]]
) -> None:
    """One rule for every route that takes a JSON body: a body of another type is 415, and no
    body is 400 where the route needs one (an optional body may be left out)."""
    before = _snapshot(session)
    wrong, optional = {}, []
    for route in json_body_routes(app, client):
        headers = callers[route.caller]
        answers = {
            "a form": client.open(
                route.url, method=route.method, data={"name": "Eve"}, headers=headers
            ),
            "text": client.open(
                route.url,
                method=route.method,
                data="{}",
                content_type="text/plain",
                headers=headers,
            ),
        }
        expected = {"a form": 415, "text": 415}
        if route.body_required:
            answers["no body"] = client.open(route.url, method=route.method, headers=headers)
            expected["no body"] = 400
        else:
            optional.append(str(route))
        for name, response in answers.items():
            got = (response.status_code, (response.json or {}).get("code"))
            want = {415: "unsupported_media_type", 400: "malformed_json"}[expected[name]]
            if got != (expected[name], want):
                wrong[f"{route} with {name}"] = got
    assert wrong == {}
    # Leaving the body out means "nothing to say" only where every field is optional.
    assert sorted(optional) == [
        "POST /api/v1/events/x_event_id/redeliver",
        "POST /api/v1/holds/x_hold_id/capture",
        "POST /api/v1/holds/x_hold_id/void",
        "POST /api/v1/me/draws/x_draw_id/entries",
        "POST /api/v1/redemptions/x_redemption_id/reversal",
    ]
    assert _snapshot(session) == before


def test_every_json_body_refuses_a_key_given_twice(
    app: Flask, client: FlaskClient, session: Session, callers: dict[str, dict[str, str]]
) -> None:
    before = _snapshot(session)
    wrong = {}
    for route in json_body_routes(app, client):
        response = client.open(
            route.url,
            method=route.method,
            data=b'{"amount": 1, "amount": 2}',
            content_type="application/json",
            headers=callers[route.caller],
        )
        body = response.json or {}
        if (response.status_code, body.get("code")) != (400, "malformed_json") or (
            '"amount"' not in body.get("detail", "")
        ):
            wrong[str(route)] = (response.status_code, body.get("code"), body.get("detail"))
    assert wrong == {}
    assert _snapshot(session) == before


def test_a_batch_line_with_a_key_twice_is_refused_on_its_own(
    client: FlaskClient, session: Session, world: dict[str, Any]
) -> None:
    lines = [
        b'{"member": "CARD", "amount": 100, "currency": "EUR", "external_id": "ok"}',
        b'{"member": "CARD", "amount": 100, "currency": "EUR", "external_id": "x", "member": "x"}',
        # A key no column can hold, twice: the refusal is kept for the Idempotency-Key all the same.
        b'{"\\u0000\\ud800": 1, "\\u0000\\ud800": 2}',
    ]
    response = client.post(
        "/api/v1/purchases/batch",
        data=b"\n".join(lines).replace(b"CARD", world["card"].encode()),
        content_type="application/x-ndjson",
        headers={**world["merchant"], "Idempotency-Key": "twice"},
    )

    first, second, third = response.json["results"]
    assert first["status"] == 201
    assert (second["status"], second["body"]["code"]) == (400, "malformed_json")
    assert '"member"' in second["body"]["detail"]
    assert (third["status"], third["body"]["code"]) == (400, "malformed_json")


@pytest.mark.parametrize(
    "items",
    [
        [{"sku": "rose", "amount": 1000, "quantity": 2}, {"sku": "card", "amount": 250}],
        [{"sku": "gift wrap", "amount": 0}, {"sku": "vase", "amount": 1250}],
        [],
    ],
    ids=["two lines", "a free line", "no items"],
)
def test_items_whose_line_totals_add_up_to_the_amount_are_recorded(
    client: FlaskClient, world: dict[str, Any], items: list[dict[str, Any]]
) -> None:
    body = _fill(purchase(items=items), world["card"])

    response = client.post("/api/v1/purchases", json=body, headers=world["merchant"])

    assert response.status_code == 201, response.json


def test_a_batch_line_whose_items_do_not_add_up_is_refused_on_its_own(
    client: FlaskClient, world: dict[str, Any]
) -> None:
    lines = [
        purchase(external_id="adds-up", items=[{"sku": "a", "amount": 1250}]),
        purchase(external_id="does-not", items=[{"sku": "a", "amount": 1249}]),
    ]

    response = client.post(
        "/api/v1/purchases/batch", json=_fill(lines, world["card"]), headers=world["merchant"]
    )

    first, second = response.json["results"]
    assert first["status"] == 201
    assert (second["status"], second["body"]["code"]) == (422, "validation_error")
    assert "items" in second["body"]["errors"]
