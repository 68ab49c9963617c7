"""The audience against a model (issue 13): random sequences of consents granted and withdrawn
(per channel and for sharing, from the member site or a partner's app), purchases and
redemptions at merchants, and erasures, for a few members with and without each contact. After
every step, each merchant's audience for each channel, read as that merchant (row-level security
included on PostgreSQL), is exactly the members the model says: active, earned there, latest
consent for the channel and for sharing granted, and holding the channel's contact."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import select
from sqlalchemy.orm import Session

from coalition import tenancy
from coalition.database import table
from coalition.extensions import db
from coalition.members.models import Member
from coalition.members.services import create_member
from coalition.privacy import reads, services
from coalition.privacy.models import CHANNELS, PURPOSES
from tests import factories as f
from tests.factories import T0

members = table(Member)
EXAMPLES = int(os.environ.get("CONSENT_MODEL_EXAMPLES", "25"))
EXAMPLES_BY_BACKEND = {"postgresql": EXAMPLES, "sqlite": max(1, EXAMPLES // 4)}
# Each member's contact: (email, phone, name); some lack one, so a channel cannot reach them.
CONTACTS = (
    ("a@example.org", "+49 1", "Ada"),
    ("b@example.org", None, "Ben"),
    (None, "+49 3", None),
    ("d@example.org", "+49 4", "Dov"),
)
CONTACT_INDEX = {"email": 0, "sms": 1, "post": 2}
SOURCES = (services.ME, services.Source("api", "cli_partnerapp"))


class ConsentMachine(RuleBasedStateMachine):
    app = None  # set by the test

    def __init__(self) -> None:
        super().__init__()
        self.context = self.app.app_context()
        self.context.push()
        self.connection = db.engine.connect()
        self.outer = self.connection.begin()
        self.session = Session(bind=self.connection, join_transaction_mode="create_savepoint")
        self.merchants = [f.merchant(self.session, name) for name in ("Alpha", "Beta")]
        self.members = [
            create_member(self.session, now=T0, email=e, phone=p, name=n)[0] for e, p, n in CONTACTS
        ]
        self.public = dict(
            self.session.execute(
                select(members.c.id, members.c.public_id).where(members.c.id.in_(self.members))
            ).all()
        )
        # The model: each member's latest choice per purpose, where it earned, its points,
        # and whether it is erased.
        self.granted = {m: dict.fromkeys(PURPOSES, False) for m in self.members}
        self.shopped: dict[int, set[int]] = {m: set() for m in self.members}
        self.points = dict.fromkeys(self.members, 0)
        self.erased: set[int] = set()

    def teardown(self) -> None:
        self.session.close()
        self.outer.rollback()
        self.connection.close()
        self.context.pop()

    @rule(
        who=st.integers(0, len(CONTACTS) - 1),
        choices=st.dictionaries(st.sampled_from(PURPOSES), st.booleans(), min_size=1),
        source=st.sampled_from(SOURCES),
    )
    def choose(self, who: int, choices: dict[str, bool], source: services.Source) -> None:
        member = self.members[who]
        if member in self.erased:
            return  # an erased member has no site and no tokens left to choose with
        services.set_consents(self.session, member, choices, source=source, now=T0)
        self.granted[member].update(choices)

    @rule(who=st.integers(0, len(CONTACTS) - 1), shop=st.integers(0, 1))
    def purchase(self, who: int, shop: int) -> None:
        member = self.members[who]
        if member in self.erased:
            return  # its card is blocked
        f.purchase(self.session, member, self.merchants[shop], 5)
        self.shopped[member].add(self.merchants[shop])
        self.points[member] += 5

    @rule(who=st.integers(0, len(CONTACTS) - 1), shop=st.integers(0, 1))
    def redeem(self, who: int, shop: int) -> None:
        """Spending at a shop is not shopping there: the audience does not change."""
        member = self.members[who]
        if member in self.erased or self.points[member] < 2:
            return
        f.redeem(self.session, member, self.merchants[shop], 2)
        self.points[member] -= 2

    @rule(who=st.integers(0, len(CONTACTS) - 1))
    def erase(self, who: int) -> None:
        member = self.members[who]
        if member in self.erased:
            return
        services.erase(self.session, member, source=services.ME, now=T0)
        self.erased.add(member)
        self.granted[member] = dict.fromkeys(PURPOSES, False)

    def expected(self, merchant: int, channel: str) -> list[str]:
        return sorted(
            self.public[m]
            for m, contact in zip(self.members, CONTACTS, strict=True)
            if m not in self.erased
            and merchant in self.shopped[m]
            and self.granted[m][channel]
            and self.granted[m]["sharing"]
            and contact[CONTACT_INDEX[channel]] is not None
        )

    @invariant()
    def the_audience_is_the_models(self) -> None:
        for merchant in self.merchants:
            with tenancy.acting_as(tenancy.Tenant.merchant(merchant), self.session):
                for channel in CHANNELS:
                    seen = sorted(
                        row["member"] for row in reads.audience_all(self.session, merchant, channel)
                    )
                    assert seen == self.expected(merchant, channel), (merchant, channel)

    @invariant()
    def each_members_consents_are_its_latest_choices(self) -> None:
        for member in self.members:
            current = reads.current_consents(self.session, member)
            assert {p: p in current and current[p].granted for p in PURPOSES} == self.granted[
                member
            ]


@pytest.mark.both_backends
def test_the_audience_behaves_like_its_model(app, backend) -> None:  # type: ignore[no-untyped-def]
    ConsentMachine.app = app
    run_state_machine_as_test(
        ConsentMachine,
        settings=settings(
            max_examples=EXAMPLES_BY_BACKEND[backend],
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
