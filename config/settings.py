"""Settings from environment variables (12-factor). The README's settings table lists each one;
`load` is the only place that reads them, so the table and this module stay one list."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import limits

ENVIRONMENTS = ("development", "production", "testing")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# Rate limits (QUALITY S5), in the `limits` notation: per OAuth client on the API, per address
# on public sign-ups and applications, per address on member sign-in.
RATE_LIMITS = {
    "RATE_LIMIT_CLIENT": "1000/second",
    "RATE_LIMIT_SIGNUP": "20/hour",
    "RATE_LIMIT_SIGNIN": "10/minute",
}


class SettingsError(RuntimeError):
    """A setting is missing or malformed; the process must not start."""


def database_url(raw: str) -> str:
    """Accept the usual `postgresql://user@host/db` and `sqlite:///path` forms and name the driver
    SQLAlchemy should use (psycopg 3 for PostgreSQL)."""
    for prefix in ("postgresql://", "postgres://"):
        if raw.startswith(prefix):
            return "postgresql+psycopg://" + raw[len(prefix) :]
    if raw.startswith(("postgresql+psycopg://", "sqlite://")):
        return raw
    raise SettingsError(
        f"DATABASE_URL must start with postgresql:// or sqlite:///, not {raw.split(':', 1)[0]!r}"
    )


def _secret_key(environment: str, given: str | None, instance_path: Path) -> str:
    if given:
        return given
    if environment == "production":
        raise SettingsError("SECRET_KEY is required in production; refusing to start without it")
    # Development and tests: make one once and keep it, so sessions survive restarts. The file is
    # created readable by its owner only, and exclusively: of two processes starting at once,
    # the second reads the first one's key.
    keyfile = instance_path / "secret_key"
    instance_path.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(keyfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return keyfile.read_text().strip()
    key = secrets.token_urlsafe(48)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(key)
    return key


def _stripe(environ: Mapping[str, str]) -> dict[str, Any]:
    """Stripe (SPEC 3.7): the API key (unset, in any environment, the platform runs and its
    payments wait without a call being made, decision 84), the API's base address (tests point
    it at a local stand-in) and the inbound webhooks' signing secret and tolerance."""
    api_base = environ.get("STRIPE_API_BASE", "https://api.stripe.com").rstrip("/")
    if not api_base.startswith(("https://", "http://")):
        raise SettingsError("STRIPE_API_BASE must be an http(s) address")
    raw_tolerance = environ.get("STRIPE_WEBHOOK_TOLERANCE", "300")
    if not raw_tolerance.isdigit() or int(raw_tolerance) == 0:
        raise SettingsError("STRIPE_WEBHOOK_TOLERANCE must be a positive number of seconds")
    return {
        "STRIPE_API_KEY": environ.get("STRIPE_API_KEY") or None,
        "STRIPE_API_BASE": api_base,
        "STRIPE_WEBHOOK_SECRET": environ.get("STRIPE_WEBHOOK_SECRET") or None,
        "STRIPE_WEBHOOK_TOLERANCE": int(raw_tolerance),
    }


def _webhooks(environ: Mapping[str, str], environment: str) -> dict[str, Any]:
    """Outbound webhooks (SPEC 3.6): `WEBHOOKS_ALLOW_PRIVATE=true` lets endpoints resolve to
    private, loopback and other non-public addresses (development and tests only: refused in
    production); `WEBHOOKS_CA_BUNDLE` names a PEM file of the certificate authorities to trust
    instead of the system's (a test receiver's, a private CA); `WEBHOOKS_TIMEOUT_SECONDS` bounds
    one delivery attempt (15 s; tests shorten it)."""
    raw_private = environ.get("WEBHOOKS_ALLOW_PRIVATE", "false").lower()
    if raw_private not in ("true", "false"):
        raise SettingsError("WEBHOOKS_ALLOW_PRIVATE must be true or false")
    allow_private = raw_private == "true"
    if allow_private and environment == "production":
        raise SettingsError(
            "WEBHOOKS_ALLOW_PRIVATE=true is for development and tests; refusing it in production"
        )
    ca_bundle = environ.get("WEBHOOKS_CA_BUNDLE") or None
    if ca_bundle is not None and not Path(ca_bundle).is_file():
        raise SettingsError(f"WEBHOOKS_CA_BUNDLE {ca_bundle!r} is not a file")
    raw_timeout = environ.get("WEBHOOKS_TIMEOUT_SECONDS", "15")
    try:
        timeout = float(raw_timeout)
    except ValueError:
        timeout = 0.0
    if not 0 < timeout <= 60:
        raise SettingsError("WEBHOOKS_TIMEOUT_SECONDS must be a number of seconds up to 60")
    return {
        "WEBHOOKS_ALLOW_PRIVATE": allow_private,
        "WEBHOOKS_CA_BUNDLE": ca_bundle,
        "WEBHOOKS_TIMEOUT_SECONDS": timeout,
    }


def load(environ: Mapping[str, str], instance_path: Path) -> dict[str, Any]:
    """Flask config keys from the environment. Raises SettingsError on anything unusable."""
    environment = environ.get("COALITION_ENV", "development")
    if environment not in ENVIRONMENTS:
        raise SettingsError(f"COALITION_ENV must be one of {', '.join(ENVIRONMENTS)}")

    raw_db = environ.get("DATABASE_URL") or f"sqlite:///{instance_path / 'coalition.db'}"
    timezone_name = environ.get("COALITION_TIMEZONE", "UTC")
    try:
        ZoneInfo(timezone_name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise SettingsError(
            f"COALITION_TIMEZONE {timezone_name!r} is not an IANA time zone"
        ) from exc

    log_level = environ.get("LOG_LEVEL", "INFO").upper()
    if log_level not in LOG_LEVELS:
        raise SettingsError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}")

    raw_timeout = environ.get("DATABASE_STATEMENT_TIMEOUT_MS", "30000")
    if not raw_timeout.isdigit():
        raise SettingsError("DATABASE_STATEMENT_TIMEOUT_MS must be a whole number of milliseconds")

    raw_proxies = environ.get("PROXY_COUNT", "0")
    if not raw_proxies.isdigit():
        raise SettingsError("PROXY_COUNT must be the number of proxies in front of the app")

    card_prefix = environ.get("COALITION_CARD_PREFIX", "6375")
    if not (len(card_prefix) == 4 and card_prefix.isascii() and card_prefix.isdigit()):
        raise SettingsError("COALITION_CARD_PREFIX must be 4 digits")

    stripe_settings = _stripe(environ)

    rate_limits = {}
    for name, default in RATE_LIMITS.items():
        rate_limits[name] = environ.get(name, default)
        try:
            limits.parse(rate_limits[name])
        except ValueError as exc:
            raise SettingsError(
                f"{name} must read like '10/minute', not {rate_limits[name]!r}"
            ) from exc

    return {
        **rate_limits,
        **stripe_settings,
        **_webhooks(environ, environment),
        "COALITION_ENV": environment,
        # PostgreSQL: the role the app acts as, so row-level security applies (see tenancy.py).
        "DATABASE_ROLE": environ.get("DATABASE_ROLE", "coalition_app"),
        # PostgreSQL: no query runs longer (QUALITY S5); 0 switches the bound off.
        "DATABASE_STATEMENT_TIMEOUT_MS": int(raw_timeout),
        "COALITION_CARD_PREFIX": card_prefix,
        "PROXY_COUNT": int(raw_proxies),
        "RATELIMIT_ENABLED": environ.get("RATELIMIT_ENABLED", "true").lower() != "false",
        "SQLALCHEMY_DATABASE_URI": database_url(raw_db),
        "REDIS_URL": environ.get("REDIS_URL") or None,
        "SECRET_KEY": _secret_key(environment, environ.get("SECRET_KEY"), instance_path),
        "COALITION_TIMEZONE": timezone_name,
        "LOG_LEVEL": log_level,
    }


def from_os(instance_path: Path) -> dict[str, Any]:
    return load(os.environ, instance_path)
