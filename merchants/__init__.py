"""Tenants: the partner merchants. Applications and approval, OAuth clients and scopes, the
merchant API and the portal build on the identity kept here."""
