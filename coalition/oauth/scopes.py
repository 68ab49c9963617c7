"""The scopes of SPEC 3.2, by who may hold them."""

from __future__ import annotations

MERCHANT_SCOPES = frozenset(
    {
        "purchases:write",
        "redemptions:write",
        "members:read",
        "members:write",
        "transactions:read",
        "rules:write",
        "rewards:write",
        "webhooks:write",
        "statements:read",
        "audience:read",
    }
)
# Granted by a member, at /oauth/authorize, to a merchant's app acting for it.
MEMBER_SCOPES = frozenset({"balance:read", "redeem"})
OPERATOR_SCOPES = frozenset({"operator"})

# What a client of each kind may be given.
ALLOWED = {
    "merchant": MERCHANT_SCOPES | MEMBER_SCOPES,
    "operator": OPERATOR_SCOPES,
}


def parse(scope: str | None) -> frozenset[str]:
    return frozenset((scope or "").split())


def render(scopes: frozenset[str] | set[str]) -> str:
    return " ".join(sorted(scopes))
