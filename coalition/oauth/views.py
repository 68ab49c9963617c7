"""The OAuth 2 endpoints (SPEC 3.2): token, authorize (the member signs in and consents),
revoke, introspect, and the server metadata."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("oauth", __name__)
