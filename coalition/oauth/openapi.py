"""The OAuth 2 server's endpoints (SPEC 3.2) in the API's OpenAPI document. They are plain Flask
views (Authlib answers them), so their description is written here, beside them, rather than
drawn from schemas: form parameters in, RFC 6749 JSON (or, for /oauth/authorize, HTML pages)
out. A refusal before Authlib has its say (too many requests, a body over 10 MiB) is a problem."""

from __future__ import annotations

from copy import deepcopy
from typing import Any

from coalition.oauth import scopes

FORM = "application/x-www-form-urlencoded"
MEMBER_SCOPE_WORDS = "any of " + ", ".join(sorted(scopes.MEMBER_SCOPES))
# A client authenticates with HTTP Basic (client_secret_basic) or with `client_id` and
# `client_secret` in the form (client_secret_post).
CLIENT_AUTHENTICATION: list[dict[str, list[str]]] = [{"clientSecretBasic": []}, {}]
SECURITY_SCHEMES = {
    "clientSecretBasic": {
        "type": "http",
        "scheme": "basic",
        "description": "An OAuth client: its client_id and client_secret (client_secret_basic). "
        "They may instead be sent in the form (client_secret_post).",
    }
}

_CLIENT_FIELDS = {
    "client_id": {"type": "string", "description": "with client_secret_post"},
    "client_secret": {"type": "string", "description": "with client_secret_post"},
}
_OAUTH_ERROR = {
    "type": "object",
    "description": "An RFC 6749 error, as OAuth clients read it.",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "description": "invalid_request, invalid_client, ..."},
        "error_description": {"type": "string"},
    },
}
_NO_STORE = {
    "Cache-Control": {"schema": {"type": "string"}, "description": "no-store"},
    "Pragma": {"schema": {"type": "string"}, "description": "no-cache"},
}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "description": description,
        "headers": _NO_STORE,
        "content": {"application/json": {"schema": schema}},
    }


def _html(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


_REFUSED = {
    "400": _json("A request the server cannot take (`invalid_request`...).", _OAUTH_ERROR),
    "401": _json("The client is unknown or its secret wrong (`invalid_client`).", _OAUTH_ERROR),
    "413": "REQUEST_ENTITY_TOO_LARGE",
    "429": "TOO_MANY_REQUESTS",
}


def _form(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "required": True,
        "content": {
            FORM: {
                "schema": {
                    "type": "object",
                    "properties": {**properties, **_CLIENT_FIELDS},
                    "required": required,
                }
            }
        },
    }


PATHS: dict[str, dict[str, Any]] = {
    "/oauth/token": {
        "post": {
            "tags": ["oauth"],
            "summary": "Get an access token",
            "description": "`client_credentials` for a merchant's or the operator's own "
            "software; `authorization_code` (PKCE S256) for a merchant's app acting for a "
            "member who consented at /oauth/authorize; `refresh_token` for a new token, the "
            "refresh token rotating.",
            "security": CLIENT_AUTHENTICATION,
            "requestBody": _form(
                {
                    "grant_type": {
                        "type": "string",
                        "enum": ["client_credentials", "authorization_code", "refresh_token"],
                    },
                    "scope": {
                        "type": "string",
                        "description": "space-separated; default: every scope of the client",
                    },
                    "code": {"type": "string", "description": "with authorization_code"},
                    "redirect_uri": {"type": "string", "description": "with authorization_code"},
                    "code_verifier": {
                        "type": "string",
                        "description": "with authorization_code: the PKCE verifier",
                    },
                    "refresh_token": {"type": "string", "description": "with refresh_token"},
                },
                ["grant_type"],
            ),
            "responses": {
                "200": _json(
                    "A bearer token.",
                    {
                        "type": "object",
                        "required": ["access_token", "token_type", "expires_in", "scope"],
                        "properties": {
                            "access_token": {"type": "string"},
                            "token_type": {"type": "string", "enum": ["Bearer"]},
                            "expires_in": {"type": "integer"},
                            "scope": {"type": "string"},
                            "refresh_token": {
                                "type": "string",
                                "description": "with authorization_code and refresh_token",
                            },
                        },
                    },
                ),
                **_REFUSED,
            },
        }
    },
    "/oauth/revoke": {
        "post": {
            "tags": ["oauth"],
            "summary": "Revoke a token (RFC 7009)",
            "description": "A client revokes one of its own access or refresh tokens. An "
            "unknown token, or another client's, is answered as revoked and left alone.",
            "security": CLIENT_AUTHENTICATION,
            "requestBody": _form(
                {
                    "token": {"type": "string"},
                    "token_type_hint": {
                        "type": "string",
                        "enum": ["access_token", "refresh_token"],
                    },
                },
                ["token"],
            ),
            "responses": {
                "200": _json("Revoked, or nothing to revoke.", {"type": "object"}),
                **_REFUSED,
            },
        }
    },
    "/oauth/introspect": {
        "post": {
            "tags": ["oauth"],
            "summary": "Look at a token (RFC 7662)",
            "description": "A client asks whether one of its own tokens is active, and what "
            "it holds. Another client's token is inactive for it.",
            "security": CLIENT_AUTHENTICATION,
            "requestBody": _form(
                {
                    "token": {"type": "string"},
                    "token_type_hint": {
                        "type": "string",
                        "enum": ["access_token", "refresh_token"],
                    },
                },
                ["token"],
            ),
            "responses": {
                "200": _json(
                    "`active`, and for an active token what it holds.",
                    {
                        "type": "object",
                        "required": ["active"],
                        "properties": {
                            "active": {"type": "boolean"},
                            "client_id": {"type": "string"},
                            "scope": {"type": "string"},
                            "exp": {"type": "integer"},
                            "iat": {"type": "integer"},
                            "merchant": {"type": "string"},
                            "member": {"type": "string"},
                            "token_type": {"type": "string"},
                        },
                    },
                ),
                **_REFUSED,
            },
        }
    },
    "/oauth/authorize": {
        "get": {
            "tags": ["oauth"],
            "summary": "A member signs in and consents (pages)",
            "description": "Where a merchant's app sends a member (authorization code, PKCE "
            "S256, member scopes only): a sign-in page, then a consent page naming the app "
            "and what it may do. The answer goes back to the app's registered redirect URI.",
            "parameters": [
                {"name": name, "in": "query", "required": name != "state", "schema": schema}
                for name, schema in (
                    ("response_type", {"type": "string", "enum": ["code"]}),
                    ("client_id", {"type": "string"}),
                    ("redirect_uri", {"type": "string"}),
                    ("scope", {"type": "string", "description": MEMBER_SCOPE_WORDS}),
                    ("state", {"type": "string"}),
                    ("code_challenge", {"type": "string"}),
                    ("code_challenge_method", {"type": "string", "enum": ["S256"]}),
                )
            ],
            "responses": {
                "200": _html("The sign-in page, or the consent page once signed in."),
                "302": {
                    "description": "Back to the app's redirect URI, with an error it can read.",
                    "headers": {"Location": {"schema": {"type": "string"}}},
                },
                "400": _html(
                    "A page saying the link does not work (an unknown client or "
                    "redirect URI is never redirected to)."
                ),
            },
        },
        "post": {
            "tags": ["oauth"],
            "summary": "The sign-in and consent forms (pages)",
            "description": "The forms of the pages above, each with its CSRF token: `step` "
            "`signin` (email, password), `consent` (decision `allow` or `deny`) or `signout`.",
            "requestBody": {
                "required": True,
                "content": {
                    FORM: {
                        "schema": {
                            "type": "object",
                            "required": ["csrf_token", "step"],
                            "properties": {
                                "csrf_token": {"type": "string"},
                                "step": {
                                    "type": "string",
                                    "enum": ["signin", "consent", "signout"],
                                },
                                "email": {"type": "string"},
                                "password": {"type": "string"},
                                "decision": {"type": "string", "enum": ["allow", "deny"]},
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": _html("The page again (a wrong password, or the consent page)."),
                "302": {
                    "description": "Consent given or denied: back to the app's redirect URI.",
                    "headers": {"Location": {"schema": {"type": "string"}}},
                },
                "303": {
                    "description": "Signed in or out: on to the consent or sign-in page.",
                    "headers": {"Location": {"schema": {"type": "string"}}},
                },
                "400": _html("A page saying the link or the form does not work."),
                "413": "REQUEST_ENTITY_TOO_LARGE",
                "429": _html(
                    "Too many sign-in attempts from this address; the page says when to try again."
                ),
            },
        },
    },
    "/.well-known/oauth-authorization-server": {
        "get": {
            "tags": ["oauth"],
            "summary": "The server's metadata (RFC 8414)",
            "responses": {
                "200": {
                    "description": "Endpoints, grants, PKCE methods, scopes and client "
                    "authentication methods.",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["issuer", "token_endpoint", "scopes_supported"],
                                "properties": {
                                    "issuer": {"type": "string"},
                                    "authorization_endpoint": {"type": "string"},
                                    "token_endpoint": {"type": "string"},
                                    "revocation_endpoint": {"type": "string"},
                                    "introspection_endpoint": {"type": "string"},
                                    "scopes_supported": {
                                        "type": "array",
                                        "items": {
                                            "type": "string",
                                            "enum": sorted(scopes.DESCRIPTIONS),
                                        },
                                    },
                                },
                            }
                        }
                    },
                },
                "429": "TOO_MANY_REQUESTS",
            },
        }
    },
}


def paths() -> dict[str, dict[str, Any]]:
    """The paths, each time a copy (apispec writes into what it is given)."""
    return deepcopy(PATHS)
