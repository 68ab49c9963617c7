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
MEMBER_SCOPES = {"balance:read", "redeem"}
# An operation with two ways in (the redemption: a merchant's till or a member's app) is
# called with each in turn, so both are exercised.
_turns = itertools.count()


def kinds_for(security: list[dict[str, list[str]]]) -> list[str]:
    """The token kinds that satisfy an operation's alternatives, in the document's order."""
    kinds = []
    for alternative in security:
        scopes = set(alternative.get("oauth2", []))
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
        headers["Authorization"] = f"Bearer {data}"
        case.headers = headers


@schemathesis.hook
def before_call(context: schemathesis.HookContext, case: schemathesis.Case, kwargs: Any) -> None:
    parameters = case.path_parameters or {}
    if case.path.endswith("/suspend") and parameters.get("merchant_id") == PROTECTED_MERCHANT:
        case.path_parameters = {**parameters, "merchant_id": "mer_not_the_runs_own_merchant"}
