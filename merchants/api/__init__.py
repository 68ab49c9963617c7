"""The merchants' JSON API, one module per resource: `points` (purchases, refunds, redemptions,
holds and transactions, at a merchant's till) and `onboarding` (applications and the operator's
merchants). Thin: parse and validate, call a service, serialise the result with its schema."""
