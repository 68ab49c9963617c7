"""Webhooks: outbound delivery of the core's outbox events (`coalition.outbox`) to merchants'
endpoints, signed and retried. Not built yet: it comes with the webhooks issue, and until then
nothing reads the outbox. Stripe's inbound events are settlement's
(`settlement.api.stripe_events`)."""
