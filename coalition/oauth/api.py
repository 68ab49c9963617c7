"""The operator's client management over the API: rotate a client's secret (the old one keeps
working for a grace period) and revoke a client."""

from __future__ import annotations

from coalition.web.api import blueprint

bp = blueprint("clients", __name__, "OAuth clients: secret rotation and revocation")
