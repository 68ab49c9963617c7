"""Member routes (SPEC 3.3, 3.4): online sign-up, enrolment at a till, look-up by card or id,
and the member API behind a member-delegated token (`/me`...)."""

from __future__ import annotations

from coalition.web.api import blueprint

bp = blueprint("members", __name__, "Members: sign-up, enrolment, look-up, and the member API")
