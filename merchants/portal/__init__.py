"""The merchant portal, `/portal` (SPEC 3.9): `face` holds the blueprint and the session;
`account` the way in (apply, sign in, reset); `views` the signed-in merchant's pages. Settlement
adds the statements pages and the dashboard's money (settlement/portal.py)."""

from merchants.portal import (  # noqa: F401 (their routes join the blueprint)
    account,
    reward_pages,
    rules_pages,
    segment_pages,
    views,
    webhook_pages,
)
from merchants.portal.face import bp

__all__ = ["bp"]
