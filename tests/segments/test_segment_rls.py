"""Row-level security for segments (PostgreSQL, QUALITY S2): merchant B's tenant sees none of
merchant A's segments or their members, and no member's attributes; a member who withdraws its
profiling consent through a partner's app leaves every segment at once, although its own tenant
may not write another merchant's segment members (the service acts as the system for it)."""

from __future__ import annotations

from datetime import timedelta

from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from coalition import clock, tenancy
from coalition.members import attributes
from coalition.privacy import services as privacy
from coalition.segments import services
from coalition.segments.models import segment_members, segments
from coalition.segments.services import Owner
from tests import factories as f


def _count(session: Session, table: object) -> int:
    return int(session.execute(select(func.count()).select_from(table)).scalar_one())


def test_merchant_b_sees_none_of_merchant_as_segments_members_or_attributes(
    session: Session,
) -> None:
    a, b = f.merchant(session, "A"), f.merchant(session, "B")
    member_id = f.member(session)
    f.purchase(session, member_id, a, 10, now=clock.utcnow() - timedelta(days=1))
    privacy.set_consents(
        session, member_id, {"profiling": True}, source=privacy.ME, now=clock.utcnow()
    )
    attributes.set_attributes(
        session, member_id, {"region": "north"}, now=clock.utcnow(), today=clock.utcnow().date()
    )
    services.create(session, Owner(a), name="A's", definition={}, now=clock.utcnow())

    with tenancy.acting_as(tenancy.Tenant.merchant(b), session):
        seen_by_b = (
            _count(session, segments),
            _count(session, segment_members),
            _count(session, attributes.member_attributes),
        )
    with tenancy.acting_as(tenancy.Tenant.merchant(a), session):
        seen_by_a = (
            _count(session, segments),
            _count(session, segment_members),
            _count(session, attributes.member_attributes),
        )

    assert seen_by_b == (0, 0, 0)
    # A sees its segment and its member, never what the member told.
    assert seen_by_a == (1, 1, 0)


def test_withdrawing_profiling_through_an_app_leaves_every_segment(
    client: FlaskClient, session: Session
) -> None:
    a, b = f.merchant(session, "A"), f.merchant(session, "B")
    member_id = f.member(session)
    f.purchase(session, member_id, a, 10, now=clock.utcnow() - timedelta(days=1))
    privacy.set_consents(
        session, member_id, {"profiling": True}, source=privacy.ME, now=clock.utcnow()
    )
    services.create(session, Owner(a), name="A's", definition={}, now=clock.utcnow())
    services.create(session, Owner(None), name="All", definition={}, now=clock.utcnow())
    assert _count(session, segment_members) == 2
    headers = f.member_headers(session, b, member_id, "balance:read consents:write")

    answer = client.put("/api/v1/me/consents", json={"profiling": False}, headers=headers)

    assert answer.status_code == 200
    with tenancy.acting_as(tenancy.SYSTEM, session):
        assert _count(session, segment_members) == 0
        assert sorted(session.execute(select(segments.c.member_count)).scalars()) == [0, 0]
