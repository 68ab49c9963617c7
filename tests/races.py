"""Races on PostgreSQL for service-level tests: several parties at once, each on its own
connection and transaction, released together."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from flask import Flask
from sqlalchemy import create_engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from coalition.errors import CoalitionError


def race(app: Flask, parties: int, act: Callable[[Session], Any]) -> list[Any]:
    """Run `act` in `parties` threads at once, each with its own connection and transaction;
    returns each one's result or refusal."""
    engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"], poolclass=NullPool)
    start = threading.Barrier(parties)
    outcomes: list[Any] = [None] * parties

    def party(index: int) -> None:
        # In the app, as every request and job is (the economics' terms are the app's).
        with app.app_context(), Session(engine) as session:
            start.wait()
            try:
                with session.begin():
                    outcomes[index] = act(session)
            except CoalitionError as refusal:
                outcomes[index] = refusal

    threads = [threading.Thread(target=party, args=(i,)) for i in range(parties)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    engine.dispose()
    assert not any(thread.is_alive() for thread in threads), "a party never finished"
    return outcomes
