"""OAuth tables. Unlike Authlib's SQLAlchemy mixins, nothing secret is stored in plain text:
client secrets, access and refresh tokens and authorization codes are kept as SHA-256 digests
(they are 256-bit random strings, so a fast digest is as safe as a slow one and costs no CPU on
the hot path).

Every client, token and code belongs to one tenant: a merchant (`merchant_id`) or the operator
(`merchant_id` NULL, `kind` 'operator')."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from coalition.database import BigId, Json, UTCDateTime
from coalition.extensions import Base

CLIENT_KINDS = ("merchant", "operator")


class OAuthClient(Base):
    __tablename__ = "oauth_clients"
    __table_args__ = (
        CheckConstraint("kind IN ('merchant', 'operator')", name="kind"),
        CheckConstraint(
            "(kind = 'merchant') = (merchant_id IS NOT NULL)", name="merchant_iff_merchant_kind"
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    client_id: Mapped[str] = mapped_column(String(40), unique=True)  # "cli_..."
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    merchant_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("merchants.id", ondelete="RESTRICT"), index=True
    )
    scopes: Mapped[str] = mapped_column(Text)  # space-separated, as OAuth writes them
    redirect_uris: Mapped[list[Any]] = mapped_column(Json, default=list)
    # Off while the client's merchant is suspended; `revoked_at` is for good.
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ClientSecret(Base):
    """A client's secrets: one current, plus the previous ones inside their grace period after
    a rotation (`expires_at`)."""

    __tablename__ = "oauth_client_secrets"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    client_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("oauth_clients.id", ondelete="CASCADE"), index=True
    )
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class OAuthToken(Base):
    __tablename__ = "oauth_tokens"
    __table_args__ = (Index("ix_oauth_tokens_client_member", "client_id", "member_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    client_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("oauth_clients.id", ondelete="CASCADE")
    )
    # The tenant, copied from the client so a check needs no join.
    merchant_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("merchants.id", ondelete="RESTRICT"), index=True
    )
    # Set for a member-delegated token (authorization_code grant).
    member_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("members.id", ondelete="RESTRICT")
    )
    scope: Mapped[str] = mapped_column(Text)
    access_token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    refresh_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    refresh_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Every token descended from one authorization by refreshing shares its family (RFC 9700
    # 4.14.2): a refresh token used twice revokes them all. NULL: a token with no refresh.
    family: Mapped[str | None] = mapped_column(String(40), index=True)
    # When this token's refresh token was exchanged for a new one (its revocation's cause).
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AuthorizationCode(Base):
    __tablename__ = "oauth_authorization_codes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("oauth_clients.id", ondelete="CASCADE")
    )
    merchant_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("merchants.id", ondelete="RESTRICT"), index=True
    )
    member_id: Mapped[int] = mapped_column(BigId, ForeignKey("members.id", ondelete="RESTRICT"))
    redirect_uri: Mapped[str] = mapped_column(String(2000))
    scope: Mapped[str] = mapped_column(Text)
    code_challenge: Mapped[str] = mapped_column(String(128))
    code_challenge_method: Mapped[str] = mapped_column(String(10))
    auth_time: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
