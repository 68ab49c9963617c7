"""Expiry (`coalition.ledger.expiry`): expired points go to the operator, and members are
told 30 days ahead."""

from __future__ import annotations

from datetime import timedelta

import pytest

from coalition.ledger import expiry, reads
from coalition.ledger.accounts import merchant_account_id, operator_account_id
from coalition.ledger.rows import Actor
from tests import factories as f
from tests.factories import T0
from tests.ledger_helpers import events, flows_of

pytestmark = pytest.mark.both_backends


def test_expiry_moves_the_points_to_the_operator_and_warns_thirty_days_ahead(session):
    shop, alice = f.merchant(session), f.member(session)
    f.purchase(session, alice, shop, 40, expires_at=T0 + timedelta(days=10))
    f.purchase(session, alice, shop, 60, expires_at=T0 + timedelta(days=35))
    job = Actor("job", "expire-points")

    assert expiry.notify_expiring(session, horizon=T0 + timedelta(days=30), now=T0) == 1
    assert expiry.notify_expiring(session, horizon=T0 + timedelta(days=30), now=T0) == 0
    [notice] = events(session, "points.expiring")
    assert [n["points"] for n in notice["expiring"]] == [40]

    assert expiry.expire_due_lots(session, cutoff=T0 + timedelta(days=10), now=T0, actor=job) == 1
    assert expiry.expire_due_lots(session, cutoff=T0 + timedelta(days=10), now=T0, actor=job) == 0
    assert reads.balance(session, alice, T0)["balance"] == 60
    [expired] = events(session, "points.expired")
    # The issuer hears of its own lot, by the member's id (decision 207, as `points.expiring`).
    assert expired["points"] == 40
    assert [lot["points"] for lot in expired["expired"]] == [40]
    flows = flows_of(session)
    assert flows[(merchant_account_id(session, shop), operator_account_id(session), "expire")] == 40
