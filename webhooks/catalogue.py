"""Which of the outbox's events a merchant may hear (SPEC 3.6): the types an endpoint may
subscribe to, list through `GET /api/v1/events` and receive. The outbox (`coalition.outbox`)
names every type the platform writes; some are not for merchants' endpoints:

- the coalition's own events, which name no merchant (`membership.*`, `draw.closed`: a draw is
  the operator's, its winners are told by the coalition), are never routed to one;
- `merchant.password_reset_requested` carries a sign-in secret (a reset link, development
  only): it stays in the outbox, is never listed and never delivered.

Every other type is a merchant's (`statement.issued`, `statement.disputed` and
`dispute.resolved` are its statements' and its disputes', say).

Routing itself is the event's `merchant_id`: an event goes to that merchant's endpoints only."""

from __future__ import annotations

from coalition.outbox import EVENT_TYPES

# Never listed nor delivered, whatever merchant it names.
INTERNAL = frozenset({"merchant.password_reset_requested"})
# The coalition's own: written with no merchant, so no endpoint ever hears them.
COALITION_ONLY = frozenset(
    t for t in EVENT_TYPES if t.startswith("membership.") or t == "draw.closed"
)
# Sent to the one endpoint it was asked for, whatever that endpoint subscribes to.
TEST_EVENT = "webhook_endpoint.test"

# What a merchant may list and receive, sorted for documents.
DELIVERABLE: tuple[str, ...] = tuple(sorted(EVENT_TYPES - INTERNAL - COALITION_ONLY))
# What an endpoint may subscribe to (the forms' and the API's choices).
SUBSCRIBABLE: tuple[str, ...] = tuple(t for t in DELIVERABLE if t != TEST_EVENT)


def is_deliverable(event_type: str) -> bool:
    return event_type in EVENT_TYPES and event_type not in INTERNAL
