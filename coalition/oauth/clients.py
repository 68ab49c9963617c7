"""OAuth clients: each bound to one tenant (a merchant, or the operator), with scopes it may be
granted and a secret shown once."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from coalition import tenancy
from coalition.database import table
from coalition.errors import InvalidRequest
from coalition.ids import new_id
from coalition.oauth import scopes as scope_sets
from coalition.oauth.models import ClientSecret, OAuthClient
from coalition.oauth.tokens import digest, new_secret

clients = table(OAuthClient)
secrets_ = table(ClientSecret)

MAX_REDIRECT_URIS = 10


def create_client(
    session: Session,
    *,
    name: str,
    merchant_id: int | None,
    scopes: frozenset[str] | set[str],
    now: datetime,
    redirect_uris: list[str] | None = None,
) -> dict[str, Any]:
    """A new client of a merchant (or of the operator when `merchant_id` is None). Returns
    `client_id`, `client_secret` (its only showing) and `scopes`."""
    kind = "operator" if merchant_id is None else "merchant"
    scopes = frozenset(scopes)
    refused = scopes - scope_sets.ALLOWED[kind]
    if refused or not scopes:
        raise InvalidRequest(
            f"a {kind} client may have the scopes {scope_sets.render(scope_sets.ALLOWED[kind])}",
            errors={
                "scopes": [f"not allowed: {scope_sets.render(refused)}" if refused else "empty"]
            },
        )
    redirect_uris = list(redirect_uris or [])
    if len(redirect_uris) > MAX_REDIRECT_URIS:
        raise InvalidRequest(f"at most {MAX_REDIRECT_URIS} redirect URIs")
    client_id = new_id("cli")
    client_secret = new_secret("cs_")
    with tenancy.acting_as(tenancy.SYSTEM, session):
        client_pk = session.execute(
            insert(clients)
            .values(
                client_id=client_id,
                name=name,
                kind=kind,
                merchant_id=merchant_id,
                scopes=scope_sets.render(scopes),
                redirect_uris=redirect_uris,
                disabled=False,
                created_at=now,
            )
            .returning(clients.c.id)
        ).scalar_one()
        session.execute(
            insert(secrets_).values(
                client_id=client_pk, secret_hash=digest(client_secret), created_at=now
            )
        )
    return {"client_id": client_id, "client_secret": client_secret, "scopes": sorted(scopes)}
