"""Marshmallow schemas of the OAuth clients' API (`coalition.oauth.api`): what the operator is
answered when it rotates a client's secret or revokes a client."""

from __future__ import annotations

from marshmallow import Schema, fields


class RotatedSecret(Schema):
    client_id = fields.String(required=True)
    client_secret = fields.String(
        required=True, metadata={"description": "The new secret, shown this once."}
    )
    previous_secret_expires_at = fields.DateTime(
        required=True, metadata={"description": "Until then the previous secret works too."}
    )


class RevokedClient(Schema):
    client_id = fields.String(required=True)
    revoked_at = fields.DateTime(required=True)
