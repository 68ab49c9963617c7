"""The JSON API of SPEC 3.1 on flask-smorest: `/api/v1`, its OpenAPI 3 document at
`/api/v1/openapi.json` (its own pieces in `coalition.web.openapi`, the patterns the server
checks here beside the validators), marshmallow schemas that refuse unknown fields, ids in paths,
problem responses, signed cursor pagination and idempotent POSTs."""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, current_app, json, request
from flask_smorest import Api as SmorestApi
from flask_smorest import Blueprint as SmorestBlueprint
from itsdangerous import BadData, URLSafeSerializer
from marshmallow import RAISE, Schema, ValidationError, fields, pre_load, validate
from sqlalchemy import Select
from webargs.core import missing
from webargs.flaskparser import FlaskParser, is_json_request
from werkzeug.exceptions import HTTPException
from werkzeug.routing import BaseConverter

from coalition import clock, idempotency
from coalition.errors import CoalitionError, InvalidRequest
from coalition.extensions import db
from coalition.web import access, bodies, openapi, pages, problems

PREFIX = "/api/v1"
MAX_BODY_BYTES = 10 * 1024 * 1024  # QUALITY S5
DEFAULT_PAGE, MAX_PAGE = 50, 500  # SPEC 3.1


class Api(SmorestApi):
    def handle_http_exception(self, error: HTTPException) -> Any:
        return pages.error_answer(error)

    def _register_responses(self) -> None:
        """The document's error responses are problems, as the server answers them
        (flask-smorest would document its own JSON error body)."""
        openapi.register_problem_responses(self.spec)


api = Api()


class PathId(BaseConverter):
    """What a path segment of ours may be: an id (`mer_…`, `stm_….pdf`) or a card number as a
    person types it (digits, spaces, dashes). Installed as the app's default converter, so every
    `<id>` in every route refuses anything else (a NUL byte, control characters, text that is
    not UTF-8, ids too long for any column) with 404, before the route looks anything up."""

    regex = r"[A-Za-z0-9_. -]{1,100}"


api.register_converter(
    PathId, lambda _: {"type": "string", "pattern": f"^{PathId.regex}$", "maxLength": 100}
)


class Parser(FlaskParser):
    """webargs' parser, stricter: unknown query parameters are refused like unknown body fields
    (a mistyped filter must not list everything), and bodies are read by the API's one JSON
    loader (`bodies.load_json`), so whatever is not JSON it can read (nested too deep, an
    integer too long to convert...) is `400 malformed_json`, not a crash."""

    DEFAULT_UNKNOWN_BY_LOCATION = dict.fromkeys(FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION, RAISE)

    def _raw_load_json(self, req: Any) -> Any:
        data = req.get_data(cache=True)
        if not is_json_request(req) or not data:
            return missing
        return bodies.load_json(data)


class Blueprint(SmorestBlueprint):
    ARGUMENTS_PARSER = Parser()

    def arguments(
        self, schema: Any, *, location: str = "json", required: bool = True, **options: Any
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """flask-smorest's `arguments`; a JSON body also follows `bodies.check_json_body`,
        with `required` (what the OpenAPI document says of the body) deciding whether it may
        be left out. A schema class is made into its instance here, once: webargs would make
        one on every request (marshmallow copies every declared field to do so), which cost a
        purchase more than loading its body (docs/benchmarks.md)."""
        if isinstance(schema, type):
            schema = schema()
        parse = super().arguments(schema, location=location, required=required, **options)
        if location != "json":
            return parse

        def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
            parsing = parse(view)

            @functools.wraps(parsing)
            def checked(*args: Any, **kwargs: Any) -> Any:
                bodies.check_json_body(required)
                return parsing(*args, **kwargs)

            return checked

        return decorate


def blueprint(name: str, import_name: str, description: str) -> Blueprint:
    return Blueprint(name, import_name, url_prefix=PREFIX, description=description)


class Strict(Schema):
    """Every request schema: unknown fields are refused (marshmallow's RAISE), so a caller can
    never set what it must not (`balance`, `tier`, `merchant_id`, `status`...); and text that
    no database column can hold (NUL, lone UTF-16 surrogates) is refused per field."""

    @pre_load
    def _storable_text(self, data: Any, **_: Any) -> Any:
        if isinstance(data, dict):
            errors = {
                str(name): ["text may not contain NUL or unpaired surrogate characters"]
                for name, value in data.items()
                if _unstorable(value)
            }
            if errors:
                raise ValidationError(errors)
        return data


def plain_text(value: str) -> None:
    """A field validator for text a person typed: no control characters (NUL among them) and no
    lone surrogates, which PostgreSQL cannot store and a receipt cannot print."""
    if not is_plain_text(value):
        raise ValidationError("must not contain control characters or lone surrogates")


def is_plain_text(value: str) -> bool:
    """What `plain_text` accepts, as a test."""
    return _CONTROL_OR_SURROGATE.search(value) is None


# Unicode's categories Cc (controls) and Cs (surrogates), exactly: one scan of the text in C.
_CONTROL_OR_SURROGATE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")

# What the text validators refuse, said in the document as JSON Schema (ECMA-262) patterns, so
# that document and server agree: no control character in text a person typed, and not only
# blanks where text is required (`str.strip()` strips these characters, the controls aside).
_CONTROLS = r"\x00-\x1f\x7f-\x9f"
_BLANKS = r" \xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
PLAIN_TEXT = f"^[^{_CONTROLS}]*$"
NOT_BLANK_TEXT = f"^[^{_CONTROLS}]*[^{_CONTROLS}{_BLANKS}][^{_CONTROLS}]*$"
# An http(s) URL with a host: what a website, a redirect URI or a return link must be.
HTTP_URL = r"^https?://[^\x00-\x20\x7f-\x9f/?#]+([/?#][^\x00-\x20\x7f-\x9f]*)?$"
# An email address a person can be written to: dot-separated words (no spaces, quotes or
# brackets) before the @, and a domain of two labels or more (letters, digits, hyphens).
_LOCAL = r'[^\x00-\x20\x7f-\xa0"(),.:;<>@\[\\\]]+'
_LABEL = r"[^\x00-\x2c./:-@\[-`{-\xa0]+"
EMAIL = rf"^{_LOCAL}(\.{_LOCAL})*@{_LABEL}(\.{_LABEL})+$"


def pattern(ecma: str, error: str) -> validate.Regexp:
    """A validator for a document pattern. Python's `$` also matches before a final newline,
    ECMA's does not: the server's reading ends at `\\Z`."""
    return validate.Regexp(ecma.removesuffix("$") + r"\Z", error=error)


def _document_patterns(self: Any, field: fields.Field, ret: dict[str, Any], **_: Any) -> dict:
    """An apispec attribute function: a `Regexp` validator's pattern as ECMA reads it
    (marshmallow anchors it at the start; `\\Z` is spelled `$`), and text of a request
    (`Strict`) without a pattern of its own documented as NUL-free, as `Strict` refuses NUL."""
    found = ret.get("pattern")
    if found is not None:
        if found.endswith(r"\Z"):
            found = found.removesuffix(r"\Z") + "$"
        return {"pattern": found if found.startswith("^") else "^" + found}
    if isinstance(field, fields.String) and isinstance(field.parent, Strict) and "enum" not in ret:
        return {"pattern": r"^[^\x00]*$"}
    return {}


def _unstorable(value: Any, depth: int = 0) -> bool:
    if depth > 20:
        return False  # marshmallow refuses what is nested this deep anyway
    if isinstance(value, str):
        return _UNSTORABLE.search(value) is not None
    if isinstance(value, dict):
        return any(_unstorable(v, depth + 1) or _unstorable(k, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return any(_unstorable(v, depth + 1) for v in value)
    return False


class PageArgs(Strict):
    limit = fields.Integer(load_default=DEFAULT_PAGE, validate=validate.Range(min=1, max=MAX_PAGE))
    cursor = fields.String(load_default=None, validate=validate.Length(max=200))


def page_schema(item: type[Schema], name: str) -> type[Schema]:
    """`{"data": [...], "next_cursor": ...}` around `item`."""
    return Schema.from_dict(
        {
            "data": fields.List(fields.Nested(item)),
            "next_cursor": fields.String(allow_none=True),
        },
        name=name,
    )


MAX_ROW_ID = 2**63 - 1  # a BIGINT primary key


def _cursors() -> URLSafeSerializer:
    """Cursors are signed with the app's SECRET_KEY, for the list that gives them out: a
    cursor is only ever one this API made for this path, so nothing forged reaches a query."""
    secret_key: str = current_app.config["SECRET_KEY"]
    return URLSafeSerializer(secret_key, salt=f"coalition.cursor {request.path}")


def encode_cursor(last_id: int) -> str:
    return _cursors().dumps(last_id)


def decode_cursor(cursor: str) -> int:
    try:
        last_id = _cursors().loads(cursor)
    except BadData as exc:
        raise InvalidRequest(
            "the cursor is not one this list gave out", errors={"cursor": ["invalid"]}
        ) from exc
    # Signed by us, so an id we wrote; checked all the same, as a SECRET_KEY may leak.
    if not isinstance(last_id, int) or isinstance(last_id, bool) or not 0 < last_id <= MAX_ROW_ID:
        raise InvalidRequest(
            "the cursor is not one this list gave out", errors={"cursor": ["invalid"]}
        )
    return last_id


def paginate(
    query: Select[Any], id_column: Any, args: dict[str, Any], render: Callable[[Any], Any]
) -> dict[str, Any]:
    """Newest first, keyset-paginated on `id_column` (never OFFSET): one page of `render`ed rows
    and the cursor of the next page, or None on the last."""
    limit = args["limit"]
    if args.get("cursor"):
        query = query.where(id_column < decode_cursor(args["cursor"]))
    rows = db.session.execute(query.order_by(id_column.desc()).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "data": [render(row) for row in rows],
        "next_cursor": encode_cursor(rows[-1]._mapping[id_column.key]) if more else None,
    }


def idempotent(
    operation: Callable[[], tuple[int, dict[str, Any]]],
    on_refusal: Callable[[dict[str, Any]], None] | None = None,
) -> Response:
    """Run a POST that moves points (SPEC 3.1) and commit. A refusal (a CoalitionError) leaves
    nothing of the operation behind; `on_refusal(problem)` may then write
    what must outlive it (a wrong code's count), in the same commit.

    With an `Idempotency-Key` header the first result under that key, success or refusal, is
    stored in the same transaction as the effect and replayed for the same request (header
    `Idempotent-Replayed: true`); another request under the key is 409 `idempotency_conflict`."""
    key = request.headers.get("Idempotency-Key")
    session = db.session()
    if key is None:
        try:
            status, body = operation()
            replayed = False
        except CoalitionError as refusal:
            # Before the operation the request only read (its token), so rolling the whole
            # transaction back leaves nothing of it, at no savepoint's cost on the way that works.
            session.rollback()
            status, body, replayed = refusal.status, refusal.problem(), False
    else:
        outcome = idempotency.execute(
            session,
            scope=access.principal().idempotency_scope,
            key=key,
            request_fingerprint=idempotency.fingerprint(request.method, request.path, _body()),
            operation=operation,
            now=clock.utcnow(),
        )
        status, body, replayed = outcome.status, outcome.body, outcome.replayed
    if status >= 400 and not replayed and on_refusal is not None:
        on_refusal(body)
    session.commit()
    response = _json(status, body)
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


def _body() -> Any:
    """What the request asks for: its JSON, or for another body (NDJSON) its bytes' digest."""
    if request.is_json:
        try:
            return bodies.load_json(request.get_data())
        except bodies.MalformedJson:
            pass
    return hashlib.sha256(request.get_data()).hexdigest()


def _json(status: int, body: dict[str, Any]) -> Response:
    if status >= 400:
        response = problems.response(body, status)
        if status == 429 and isinstance(body.get("retry_after"), int):
            response.headers["Retry-After"] = str(body["retry_after"])
        return response
    return Response(json.dumps(body), status=status, mimetype="application/json")


def init_app(app: Flask, blueprints: list[Blueprint]) -> None:
    # Before any route with an id is added: rules take their converters when they are added.
    app.url_map.converters.update(default=PathId, string=PathId)
    app.config.update(
        API_TITLE="Coalition",
        API_VERSION="v1",
        OPENAPI_VERSION="3.1.0",
        OPENAPI_URL_PREFIX=PREFIX,
        OPENAPI_JSON_PATH="openapi.json",
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        API_SPEC_OPTIONS={"components": {"securitySchemes": {"oauth2": openapi.oauth2_scheme()}}},
    )
    api.init_app(app, spec_kwargs={"extra_plugins": [openapi.ErrorResponses(app, PREFIX)]})
    api.ma_plugin.converter.add_attribute_function(_document_patterns)
    for bp in blueprints:
        api.register_blueprint(bp)
    openapi.document_oauth(api.spec, app)
    app.register_blueprint(openapi.docs_page(PREFIX))
    for endpoint in list(app.view_functions):
        if endpoint.startswith(("api-docs.", "api-docs-ui.")) or endpoint == "static":
            access.mark_public(app, endpoint)
