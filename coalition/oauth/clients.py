"""OAuth clients: each bound to one tenant (a merchant, or the operator), with scopes it may be
granted and a secret shown once. A secret can be rotated (the old one keeps working for a grace
period, SPEC 3.2) and a client revoked for good, which also revokes its tokens."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.orm import Session

from coalition import audit, tenancy
from coalition.database import table
from coalition.errors import CoalitionError, InvalidRequest, NotFound
from coalition.ids import is_public_id, new_id
from coalition.oauth import scopes as scope_sets
from coalition.oauth.models import ClientSecret, OAuthClient, OAuthToken
from coalition.oauth.tokens import digest, new_secret

clients = table(OAuthClient)
secrets_ = table(ClientSecret)
tokens = table(OAuthToken)

MAX_REDIRECT_URIS = 10
ROTATION_GRACE = timedelta(hours=24)


class ClientRevoked(CoalitionError):
    status, code, title = 409, "client_revoked", "The client is revoked"


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


def _client_row(session: Session, client_id: str, merchant_id: int | None) -> Any:
    """The client's row; NotFound when there is none, or (with `merchant_id`) when it belongs to
    another tenant (SPEC 3.2: exactly as if it did not exist)."""
    if not is_public_id(client_id, "cli"):
        raise NotFound("no such client")
    query = select(clients.c.id, clients.c.revoked_at).where(clients.c.client_id == client_id)
    if merchant_id is not None:
        query = query.where(clients.c.merchant_id == merchant_id)
    row = session.execute(query.with_for_update()).one_or_none()
    if row is None:
        raise NotFound("no such client")
    return row


def rotate_secret(
    session: Session,
    client_id: str,
    now: datetime,
    grace: timedelta = ROTATION_GRACE,
    merchant_id: int | None = None,
    actor: audit.Actor | None = None,
) -> dict[str, Any]:
    """A new secret for the client, shown once. The secrets it had keep working until
    `now + grace` (one that was already ending sooner keeps its earlier end). With
    `merchant_id`, only that merchant's client is found."""
    if grace < timedelta(0):
        raise ValueError("the grace period cannot be negative")
    ends = now + grace
    client_secret = new_secret("cs_")
    with tenancy.acting_as(tenancy.SYSTEM, session):
        row = _client_row(session, client_id, merchant_id)
        if row.revoked_at is not None:
            raise ClientRevoked("a revoked client gets no new secret")
        of_client = secrets_.c.client_id == row.id
        session.execute(delete(secrets_).where(of_client, secrets_.c.expires_at <= now))
        session.execute(
            update(secrets_)
            .where(of_client, or_(secrets_.c.expires_at.is_(None), secrets_.c.expires_at > ends))
            .values(expires_at=ends)
        )
        session.execute(
            insert(secrets_).values(
                client_id=row.id, secret_hash=digest(client_secret), created_at=now
            )
        )
    if actor is not None:
        audit.record(
            session,
            actor,
            "client.rotate_secret",
            "client",
            client_id,
            after={"new_secret_at": now, "previous_secret_expires_at": ends},
            now=now,
        )
    return {
        "client_id": client_id,
        "client_secret": client_secret,
        "previous_secret_expires_at": ends,
    }


def revoke_client(
    session: Session,
    client_id: str,
    now: datetime,
    merchant_id: int | None = None,
    actor: audit.Actor | None = None,
) -> dict[str, Any]:
    """Revoke the client for good, and every token it holds. Revoking it again changes nothing.
    With `merchant_id`, only that merchant's client is found."""
    with tenancy.acting_as(tenancy.SYSTEM, session):
        row = _client_row(session, client_id, merchant_id)
        revoked_at = row.revoked_at or now
        if row.revoked_at is None:
            session.execute(update(clients).where(clients.c.id == row.id).values(revoked_at=now))
        session.execute(
            update(tokens)
            .where(tokens.c.client_id == row.id, tokens.c.revoked_at.is_(None))
            .values(revoked_at=revoked_at)
        )
    if actor is not None:
        audit.record(
            session,
            actor,
            "client.revoke",
            "client",
            client_id,
            before={"revoked_at": row.revoked_at},
            after={"revoked_at": revoked_at},
            now=now,
        )
    return {"client_id": client_id, "revoked_at": revoked_at}
