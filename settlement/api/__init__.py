"""Settlement's JSON API (SPEC 3.3, 3.5, 3.7), one module per resource: `runs`, `statements` and
`reports` (one blueprint, `settlement`, defined here), `economics`, `payments`, and
`stripe_events` (Stripe's inbound events). Thin: validate with `settlement.schemas`, call a
service, serialise."""

from __future__ import annotations

from coalition.web.api import blueprint

bp = blueprint("settlement", __name__, "Settlement runs, statements and reports")
