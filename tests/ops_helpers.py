"""Driving the operator console (`/ops`) from tests: a staff account, a client signed in as it
(without the password's cost, by writing the session as the sign-in does), and a page's CSRF
token to post its forms with."""

from __future__ import annotations

import re

from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from coalition import clock
from coalition.staff import services, views
from coalition.staff.services import StaffMember

PASSWORD = "correct horse battery"


def staff(session: Session, role: str = "admin", email: str | None = None) -> StaffMember:
    return services.create_staff(
        session,
        email=email or f"{role}@operator.example",
        role=role,
        password=PASSWORD,
        now=clock.utcnow(),
    )


def sign_in_as(client: FlaskClient, session: Session, role: str = "admin") -> StaffMember:
    """`client` signed in as a new staff of `role`."""
    made = staff(session, role)
    session.commit()
    with client.session_transaction() as cookie:
        cookie.clear()
        cookie[views.STAFF_KEY] = made.id
    return made


def csrf_token(client: FlaskClient, path: str) -> str:
    """The CSRF token of the form on the page at `path`."""
    html = client.get(path).get_data(as_text=True)
    found = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html)
    assert found is not None, f"no form with a CSRF token on {path}"
    return found.group(1)
