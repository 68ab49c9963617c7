"""`coalition.database.insert_rows`, the bulk insert every ledger writer uses: each row's id comes
back at its row's place, on both databases."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from coalition import tenancy
from coalition.database import insert_rows
from coalition.outbox import event_row, outbox_events
from tests.factories import T0

pytestmark = pytest.mark.both_backends


def test_insert_rows_gives_each_row_its_own_id_in_the_order_given(session):
    rows = [
        event_row("purchase.created", {"n": n, "text": f"line {n}, 'quoted' \\ {{}}"}, T0)
        for n in range(1500)
    ]
    with tenancy.acting_as(tenancy.SYSTEM, session):
        ids = insert_rows(session, outbox_events, rows)
        stored = dict(
            session.execute(
                select(outbox_events.c.id, outbox_events.c.data).where(outbox_events.c.id.in_(ids))
            ).all()
        )

    assert len(set(ids)) == len(rows)
    assert [stored[i] for i in ids] == [row["data"] for row in rows]
    assert insert_rows(session, outbox_events, []) == []
