"""What the segment pages of both faces share (`/portal/segments`, `/ops/segments`): the form
with its choices (tiers from the coalition's ladder; the operator's partners), and one
submission, counted or saved through `services`. A refused definition comes back as messages to
show beside the form; nothing is saved."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from marshmallow import ValidationError
from sqlalchemy import column, select
from sqlalchemy import table as core_table
from sqlalchemy.orm import Session

from coalition import audit, economics
from coalition.errors import CoalitionError
from coalition.members import tiers
from coalition.segments import definitions, forms, reads, services
from coalition.segments.services import Owner

merchants = core_table(
    "merchants", column("id"), column("public_id"), column("name"), column("status")
)


@dataclass
class Outcome:
    """A submission's result: the count (for "Count"), the saved segment's id (for "Save"), or
    the messages that refused it."""

    count: int | None = None
    saved: str | None = None
    problems: list[str] = field(default_factory=list)


def minor_units(session: Session, now: datetime) -> int:
    return economics.terms_at(now, session=session).minor_units


def currency(session: Session, now: datetime) -> str:
    return economics.terms_at(now, session=session).currency


def form_for(session: Session, owner: Owner, now: datetime, formdata: Any = ...) -> Any:
    form = forms.SegmentForm() if formdata is ... else forms.SegmentForm(formdata=formdata)
    form.tiers.choices = [(name, name) for name in tiers.ladder_at(session, now).names]
    if owner.operator:
        form.partners.choices = [
            (row.public_id, row.name)
            for row in session.execute(
                select(merchants.c.public_id, merchants.c.name).order_by(merchants.c.name)
            )
        ]
    return form


def _messages(found: Any, path: str = "") -> list[str]:
    if isinstance(found, Mapping):
        return [m for key, value in found.items() for m in _messages(value, f"{path}{key} ")]
    if isinstance(found, list | tuple):
        return [m for value in found for m in _messages(value, path)]
    return [f"{path.strip()}: {found}" if path.strip() else str(found)]


def submit(
    session: Session,
    owner: Owner,
    form: Any,
    *,
    action: str,
    now: datetime,
    segment_id: str | None = None,
    actor: audit.Actor | None = None,
) -> Outcome:
    """Count (`action` "count") or save the form's definition; nothing is saved on a refusal."""
    raw = forms.definition_of(form, minor_units(session, now), owner.operator)
    try:
        loaded = definitions.DefinitionIn().load(raw)
        if action == "count":
            stored = services.prepare(session, owner, loaded, now)
            return Outcome(count=services.count(session, owner, stored, now))
        name = (form.name.data or "").strip()
        if not name:
            return Outcome(problems=[str(form.name.label.text) + ": required"])
        if segment_id is None:
            made = services.create(
                session, owner, name=name, definition=loaded, now=now, actor=actor
            )
        else:
            services.change(
                session, owner, segment_id, name=name, definition=loaded, now=now, actor=actor
            )
            made = segment_id
        return Outcome(saved=made)
    except ValidationError as refused:
        return Outcome(problems=_messages(refused.messages))
    except CoalitionError as refused:
        return Outcome(problems=_messages(refused.extra.get("errors") or refused.detail))


def page(session: Session, owner: Owner, now: datetime) -> dict[str, Any]:
    """What a segments page shows besides its form: the owner's segments, the delete form, and
    the currency the money criteria are typed in."""
    return {
        "segments": listed(session, owner),
        "delete_form": forms.DeleteSegmentForm(),
        "minor": minor_units(session, now),
        "currency": currency(session, now),
    }


def listed(session: Session, owner: Owner) -> list[dict[str, Any]]:
    return reads.page(session, owner)


# A criterion's parts in the order a person reads them (a database may keep JSON keys in any).
_ORDER = ["days", "unit", "min", "max", "ids", "match"]


def criteria_words(definition: Mapping[str, Any], minor: int) -> list[str]:
    """A definition in a few plain lines (for the list); money in its currency's units."""
    words = []
    for name, value in definition.items():
        if name == "spend" and value.get("unit") == "money":
            value = {
                **value,
                **{
                    key: f"{Decimal(value[key]) / minor} {value['currency']}"
                    for key in ("min", "max")
                    if key in value
                },
            }
            value.pop("currency")
        if isinstance(value, Mapping):
            value = ", ".join(f"{key} {value[key]}" for key in sorted(value, key=_ORDER.index))
        elif isinstance(value, list):
            value = ", ".join(str(item) for item in value)
        words.append(f"{name}: {value}")
    return words
