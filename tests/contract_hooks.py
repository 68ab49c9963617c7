"""Schemathesis hooks for tests/test_contract.py, loaded by the Schemathesis process through
SCHEMATHESIS_HOOKS. Every operation is called with a real token of the kind its documented
security requirement names: the operator's, a member-delegated one, or a merchant's. The
tokens come from the test, in COALITION_CONTRACT_TOKENS (JSON, by kind)."""

from __future__ import annotations

import itertools
import json
import os
from typing import Any

import schemathesis

TOKENS: dict[str, str] = json.loads(os.environ.get("COALITION_CONTRACT_TOKENS", "{}"))
# The merchant whose tokens the run uses: suspending it would turn every later merchant call
# into a 401 and leave the merchant routes untested. Schemathesis learns its id from answers.
PROTECTED_MERCHANT = os.environ.get("COALITION_CONTRACT_MERCHANT", "")
# The run's own clients (the till, the member's app): revoking or rotating one would turn every
# later call with its token into a 401. Schemathesis learns their ids from answers (a consent's
# history names the app that changed it).
PROTECTED_CLIENTS = set(filter(None, os.environ.get("COALITION_CONTRACT_CLIENTS", "").split(",")))
# A member that exists. Generated card numbers name nobody and generated times are rarely in
# the last year, so nearly every purchase would be refused: every other valid request that
# names a member names this one, in the coalition's currency, at no stated time, and gets
# through to the ledger (and its answers to the response schemas).
MEMBER_CARD = os.environ.get("COALITION_CONTRACT_CARD", "")
_members = itertools.count()
MEMBER_SCOPES = {"balance:read", "redeem", "consents:write", "profile:write", "account:delete"}
# An operation with two ways in (the redemption: a merchant's till or a member's app) is
# called with each in turn, so both are exercised.
_turns = itertools.count()


def kinds_for(security: list[dict[str, list[str]]]) -> list[str]:
    """The credentials that satisfy an operation's alternatives, in the document's order: a
    token of the operator, of a member or of a merchant, or a client's id and secret (the
    OAuth endpoints). An empty alternative (anyone) adds nothing."""
    kinds = []
    for alternative in security:
        if "clientSecretBasic" in alternative:
            kinds.append("client")
            continue
        if "oauth2" not in alternative:
            continue
        scopes = set(alternative["oauth2"])
        if "operator" in scopes:
            kinds.append("operator")
        elif scopes and scopes <= MEMBER_SCOPES:
            kinds.append("member")
        else:
            kinds.append("merchant")
    return kinds


@schemathesis.hook
def before_load_schema(context: schemathesis.HookContext, raw_schema: dict[str, Any]) -> None:
    """The document ends every operation's responses with `default` (any other error is a
    problem too). Without it, every status the server answers must be one the operation
    names: this run checks the stricter document."""
    for path_item in raw_schema.get("paths", {}).values():
        for operation in path_item.values():
            if isinstance(operation, dict):
                operation.get("responses", {}).pop("default", None)


@schemathesis.auth(refresh_interval=None)
class TokenOfTheOperationsKind:
    def get(self, case: schemathesis.Case, ctx: schemathesis.AuthContext) -> str | None:
        kinds = kinds_for(case.operation.definition.raw.get("security") or [])
        if not kinds:
            return None  # a public operation
        return TOKENS[kinds[next(_turns) % len(kinds)]]

    def set(self, case: schemathesis.Case, data: str, ctx: schemathesis.AuthContext) -> None:
        headers: dict[str, Any] = dict(case.headers or {})
        # A client's credentials come ready as `Basic ...`; a token is a bearer token.
        headers["Authorization"] = data if data.startswith("Basic ") else f"Bearer {data}"
        case.headers = headers


@schemathesis.hook
def before_call(context: schemathesis.HookContext, case: schemathesis.Case, kwargs: Any) -> None:
    parameters = case.path_parameters or {}
    if case.path.endswith("/suspend") and parameters.get("merchant_id") == PROTECTED_MERCHANT:
        case.path_parameters = {**parameters, "merchant_id": "mer_not_the_runs_own_merchant"}
    if parameters.get("client_id") in PROTECTED_CLIENTS:
        case.path_parameters = {**parameters, "client_id": "cli_not_the_runs_own_client"}
    meta = case.meta
    positive = meta is not None and meta.generation.mode.is_positive
    names_member = positive and isinstance(case.body, dict) and "member" in case.body
    if MEMBER_CARD and names_member and next(_members) % 2 == 0:
        body = {**case.body, "member": MEMBER_CARD}
        body.pop("occurred_at", None)
        if "currency" in body:
            body["currency"] = "EUR"
        case.body = body


# Rules that JSON Schema cannot state and the document gives in words: a value of these fields
# that the schema allows may still be refused, as `validation_error` naming the field.
RULES_IN_WORDS = {
    "cursor": "opaque: only a cursor this API gave out",
    "occurred_at": "within the last year and not ahead of now",
    "business_date": "a business day that has begun, from the coalition's first terms on",
    "month": "a month that has ended, from the coalition's first terms on",
    "effective_from": "a business day that has not begun",
    "card_number": "the coalition's prefix and a Luhn check digit",
    "merchant": "a merchant that exists",
    "member": "a redemption names its member with a merchant's token, not with a member's",
    "code": "a redemption gives the member's code with a merchant's token, not with a member's",
    "terms": "prices above 0, a fee below 1, ordered bounds, a tier ladder, a merchant's subset",
    "items": "the lines' amounts add up to the purchase's amount (decision 79)",
    "base_rate": "above 0 and within the operator's earn_rate_bounds",
    "campaigns": "each ends after it starts; names unique",
    "stamp_cards": "names unique",
    "category_multipliers": "each at most the largest multiplier",
    "pending_days": "within the operator's pending_days_bounds",
    "cost_price": "in the coalition's currency",
    "valid_until": "after valid_from",
    "quantity": "a voucher is ordered one at a time",
    "closes_at": "a draw closes in the future, within a year",
    "entry_points": "a draw takes points, free entries or both",
    "free_entries": "active partners, the coalition's currency",
    "definition": "ordered min and max; stores a merchant's, partners (that exist) the operator's",
    "from": "an insights range runs forward (decision 334)",
    "to": "an insights range touches at most 24 months (decision 334)",
}


@schemathesis.hook
def filter_failure(
    context: schemathesis.HookContext, failure: Any, case: schemathesis.Case, response: Any
) -> bool:
    """Keep every failure but a schema-valid request refused for a reason the schema cannot
    carry: a rule of the domain (a problem with its own code, such as `insufficient_points`),
    or one of RULES_IN_WORDS."""
    if response.status_code == 414:
        return False  # a URL over 4,096 bytes is refused before any parameter is read
    if type(failure).__name__ != "RejectedPositiveData":
        return True
    if case.path == "/oauth/authorize" and response.status_code == 400:
        return False  # a client that exists, its registered redirect URI, the form's CSRF token
    try:
        problem = response.json()
    except ValueError:
        return True
    if problem.get("code") not in ("validation_error", "malformed_json", "bad_request"):
        return False  # the domain's refusal of a well-formed request
    fields = set(problem.get("errors") or {})
    return not fields or not fields <= set(RULES_IN_WORDS)
