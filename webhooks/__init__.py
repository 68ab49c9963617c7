"""Webhooks: reads the core's outbox (`coalition.outbox`), signs and delivers events to
merchants' endpoints with retries, and receives Stripe's events."""
