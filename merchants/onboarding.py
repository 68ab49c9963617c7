"""Merchant applications (public), and the operator's approval, suspension, listing and client
creation (SPEC 3.3, 3.5)."""

from __future__ import annotations

from coalition.web.api import blueprint

bp = blueprint("onboarding", __name__, "Merchant applications and the operator's merchants")
