"""The draws' job (SPEC 3.8): close every draw whose closing time has come. Scheduled every
minute (`coalition.schedule`). Each draw closes in its own transaction under its row lock, and
a closed draw is skipped, so the job is safe to kill at any point and to run twice at once."""

from __future__ import annotations

import logging

from coalition import clock
from coalition.extensions import db
from coalition.jobs import task
from draws import services

log = logging.getLogger(__name__)

# A bound on one run: more due draws than this wait for the next minute.
MAX_PER_RUN = 1000


@task
def close_due_draws() -> list[str]:
    """Close the due draws, one transaction each; returns their ids."""
    closed: list[str] = []
    while len(closed) < MAX_PER_RUN:
        done = services.close_due(db.session(), clock.utcnow(), limit=1)
        db.session.commit()
        if not done:
            break
        closed.extend(done)
    if closed:
        log.info("draws closed: %s", ", ".join(closed))
    return closed
