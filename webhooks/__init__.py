"""Webhooks (SPEC 3.6): outbound delivery of the core's outbox events (`coalition.outbox`) to the
endpoints merchants register, signed per Standard Webhooks and retried for about three days.
Stripe's inbound events are settlement's (`settlement.api.stripe_events`)."""
