"""The OAuth 2 server (SPEC 3.2) on Authlib: clients bound to one tenant each, hashed secrets
and tokens, and the bearer-token check every API route goes through."""
