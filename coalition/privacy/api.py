"""The audience (SPEC 3.3): the members a merchant may contact for direct marketing. The
member's own routes (consents, export, erasure) live with the member API (`members.api`)."""

from __future__ import annotations

from typing import Any

from coalition.privacy import reads, schemas
from coalition.web.access import principal, require
from coalition.web.api import blueprint, page_schema, paginate

bp = blueprint("audience", __name__, "Audience: consenting members who shopped here")


@bp.route("/audience", methods=["GET"])
@require("audience:read")
@bp.arguments(schemas.AudienceArgs, location="query")
@bp.response(200, page_schema(schemas.AudienceMemberOut, "AudiencePage"))
@bp.alt_response(414, description="The URL is longer than 4,096 bytes (`uri_too_long`).")
def audience(args: dict[str, Any]) -> Any:
    """Members who earned points at this merchant and whose latest consent for `channel`
    (`email`, `sms` or `post`) and for sharing their contact with partners are both granted,
    newest member first, each with that channel's contact: `email` for email, `phone` for sms,
    the `name` for post (the platform keeps no postal address: pair it with your own records).
    A member without the channel's contact is left out."""
    merchant_id = principal().merchant_id
    assert merchant_id is not None  # a merchant token names its merchant
    channel = args["channel"]
    query = reads.audience_query(merchant_id, channel)
    return paginate(query, reads.members.c.id, args, reads.audience_view(channel))
