"""Jobs for the job tests. RQ finds a job's function by its module path, so these live in a module
of their own rather than inside a test; `RAN` records where each run happened."""

from __future__ import annotations

import threading
from typing import Any

from flask import current_app

from coalition.extensions import db
from coalition.jobs import task
from coalition.members.services import create_member

RAN: list[dict[str, Any]] = []


@task
def open_member(note: str) -> str:
    """Open a member (a change anyone can see in the database) and note which app and thread
    did it."""
    _, public_id = create_member(db.session)
    db.session.commit()
    RAN.append(
        {
            "note": note,
            "app": current_app._get_current_object(),  # type: ignore[attr-defined]
            "thread": threading.get_ident(),
            "member": public_id,
        }
    )
    return public_id


@task
def fail(note: str) -> None:
    raise RuntimeError(f"job {note} failed on purpose")
