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
        "segments:write",
    }
)
# Granted by a member, at /oauth/authorize, to a merchant's app acting for it.
MEMBER_SCOPES = frozenset(
    {"balance:read", "redeem", "consents:write", "profile:write", "account:delete"}
)
OPERATOR_SCOPES = frozenset({"operator"})

# What a client of each kind may be given.
ALLOWED = {
    "merchant": MERCHANT_SCOPES | MEMBER_SCOPES,
    "operator": OPERATOR_SCOPES,
}


# What each scope lets its holder do (SPEC 3.2), for the OpenAPI document's security scheme.
DESCRIPTIONS = {
    "purchases:write": "Record purchases (one or a batch) and refund them.",
    "redemptions:write": "Spend a member's points with its code: redemptions, reversals, holds.",
    "members:read": "Look a member up by card number or id: tier, balance, available points.",
    "members:write": "Enrol a member at the till.",
    "transactions:read": "List the merchant's own transactions.",
    "rules:write": "Read and change the merchant's earn rules.",
    "rewards:write": "List rewards and vouchers and fulfil their orders.",
    "webhooks:write": "Manage webhook endpoints and read the merchant's events.",
    "statements:read": "Read the merchant's monthly statements (JSON, CSV, PDF).",
    "audience:read": "List consenting members who shopped here, for direct mail.",
    "segments:write": "Define segments of the merchant's customers, read them and count them.",
    "balance:read": (
        "A member's delegation: read its profile, balance, history, code, consents and export."
    ),
    "redeem": "A member's delegation: spend its points (redemptions, orders, draw entries).",
    "consents:write": "A member's delegation: change its marketing and sharing consents.",
    "profile:write": (
        "A member's delegation: change what it tells about itself (birth date, household,"
        " interests, region)."
    ),
    "account:delete": "A member's delegation: erase the member (its data, card and points).",
    "operator": "Run the coalition: merchants, clients, economics, settlement, statements.",
}


def parse(scope: str | None) -> frozenset[str]:
    return frozenset((scope or "").split())


def render(scopes: frozenset[str] | set[str]) -> str:
    return " ".join(sorted(scopes))
