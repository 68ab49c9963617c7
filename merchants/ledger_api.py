"""The merchant API's points routes (SPEC 3.3): purchases (one or a batch), refunds,
redemptions, reversals, holds, and the merchant's transactions."""

from __future__ import annotations

from coalition.web.api import blueprint

bp = blueprint("points", __name__, "Purchases, refunds, redemptions, holds and transactions")
