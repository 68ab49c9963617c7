"""Staff accounts of the operator's console (SPEC 3.9): made by `coalition ops create-staff`,
one per email in any letter case, signed in with a password and, when set up, a TOTP code."""

from __future__ import annotations

from datetime import timedelta

import pyotp
import pytest
from flask.testing import FlaskCliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session

from coalition import audit, clock
from coalition.staff import services
from coalition.staff.models import Staff

PASSWORD = "correct horse battery"


def test_create_staff_asks_the_password_twice_and_signs_in_with_it(
    runner: FlaskCliRunner, session: Session
) -> None:
    answer = runner.invoke(
        args=["ops", "create-staff", "Ann@Example.org", "--role", "finance"],
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )

    assert answer.exit_code == 0, answer.output
    assert "ann@example.org (finance)" in answer.output
    assert PASSWORD not in answer.output
    found = services.check_password(session, "ANN@example.org", PASSWORD)
    assert found is not None and found.role == "finance" and not found.has_totp
    stored = session.execute(select(Staff.password_hash)).scalar_one()
    assert stored.startswith("scrypt:")


def test_create_staff_can_print_a_generated_password_once(
    runner: FlaskCliRunner, session: Session
) -> None:
    answer = runner.invoke(
        args=["ops", "create-staff", "bob@example.org", "--role", "support", "--print-password"]
    )

    assert answer.exit_code == 0, answer.output
    password = next(
        line.split(": ", 1)[1] for line in answer.output.splitlines() if line.startswith("password")
    )
    assert services.check_password(session, "bob@example.org", password) is not None


def test_create_staff_refuses_an_email_taken_in_another_case_and_an_unknown_role(
    runner: FlaskCliRunner, session: Session
) -> None:
    services.create_staff(
        session, email="ann@example.org", role="admin", password=PASSWORD, now=clock.utcnow()
    )
    session.commit()

    taken = runner.invoke(
        args=["ops", "create-staff", "ANN@example.org", "--role", "admin", "--print-password"]
    )
    unknown = runner.invoke(
        args=["ops", "create-staff", "c@example.org", "--role", "boss", "--print-password"]
    )
    short = runner.invoke(
        args=["ops", "create-staff", "c@example.org", "--role", "admin"], input="short\nshort\n"
    )

    assert taken.exit_code == 1 and "exists" in taken.output
    assert unknown.exit_code == 2 and "boss" in unknown.output
    assert short.exit_code == 1 and "12" in short.output


def test_a_wrong_password_or_a_disabled_account_does_not_sign_in(session: Session) -> None:
    made = services.create_staff(
        session, email="ann@example.org", role="admin", password=PASSWORD, now=clock.utcnow()
    )

    assert services.check_password(session, "ann@example.org", PASSWORD + "x") is None
    assert services.check_password(session, "nobody@example.org", PASSWORD) is None
    session.execute(Staff.__table__.update().values(disabled=True))
    assert services.check_password(session, "ann@example.org", PASSWORD) is None
    assert services.find_staff(session, made.id) is not None


def test_totp_is_kept_once_confirmed_and_each_code_is_used_once(session: Session) -> None:
    now = clock.utcnow()
    made = services.create_staff(
        session, email="ann@example.org", role="admin", password=PASSWORD, now=now
    )
    secret = services.new_totp_secret()
    uri = services.provisioning_uri(secret, made.email)
    assert uri.startswith("otpauth://totp/") and "ann%40example.org" in uri

    with pytest.raises(services.InvalidTotpCode):
        services.confirm_totp(session, made, secret, "000000", now)
    services.confirm_totp(session, made, secret, pyotp.TOTP(secret).at(now), now)

    later = now + timedelta(seconds=30)
    code = pyotp.TOTP(secret).at(later)
    assert services.verify_totp(session, made.id, code, later)
    assert not services.verify_totp(session, made.id, code, later)  # used already
    assert not services.verify_totp(session, made.id, "12345", later)
    found = services.find_staff(session, made.id)
    assert found is not None and found.has_totp
    logged = audit.events(session, action="staff.totp_set_up").rows
    assert [(e["actor_label"], e["before"], e["after"]) for e in logged] == [
        ("ann@example.org", {"has_totp": False}, {"has_totp": True})
    ]


def test_production_requires_a_second_factor_of_admin_and_finance_only(session: Session) -> None:
    now = clock.utcnow()
    made = {
        role: services.create_staff(
            session, email=f"{role}@example.org", role=role, password=PASSWORD, now=now
        )
        for role in ("admin", "finance", "support")
    }

    assert [services.needs_totp_setup(s, "production") for s in made.values()] == [
        True,
        True,
        False,
    ]
    assert not any(services.needs_totp_setup(s, "development") for s in made.values())
