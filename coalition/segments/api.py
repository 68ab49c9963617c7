"""Segments over the API (SPEC 2, segments and targeted offers): a merchant's, over its own
customers (`/segments`, scope `segments:write`, decision 302), and the operator's, coalition-wide
(`/ops/segments`, audited). Thin: validate with `schemas`, call `services` or `reads`,
serialise. Each write evaluates the segment at once; `POST /segment-counts` (and the
operator's `/ops/segment-counts`) counts a definition without saving it: a path of its own, as
`/segments/count` would be read as a segment's id too."""

from __future__ import annotations

from typing import Any

from coalition import clock
from coalition.extensions import db
from coalition.segments import reads, schemas, services
from coalition.segments.services import Owner
from coalition.web.access import operator_actor, principal, require
from coalition.web.api import PageArgs, blueprint, idempotent, page_schema, paginate

bp = blueprint("segments", __name__, "Segments: saved filters over members, with live counts")

OPERATOR = ("operator",)
SCOPE = "segments:write"
SEGMENT = schemas.SegmentOut()
UNPROCESSABLE = "An invalid field (`validation_error`, `errors` per field); nothing written."


def _merchant() -> Owner:
    return Owner(principal().merchant_id)


def _list(owner: Owner, args: dict[str, Any]) -> Any:
    return paginate(reads.listed(owner), reads.segments.c.id, args, reads.view)


def _create(owner: Owner, body: dict[str, Any], audited: bool) -> Any:
    """Create under `idempotent`: a retry with the same Idempotency-Key replays the answer
    instead of saving a second segment."""
    session, now = db.session(), clock.utcnow()

    def create() -> tuple[int, dict[str, Any]]:
        public_id = services.create(
            session,
            owner,
            name=body["name"],
            definition=body["definition"],
            now=now,
            actor=operator_actor() if audited else None,
        )
        return 201, SEGMENT.dump(reads.segment(session, owner, public_id))

    return idempotent(create)


def _change(owner: Owner, segment_id: str, body: dict[str, Any], audited: bool) -> Any:
    session, now = db.session(), clock.utcnow()
    services.change(
        session,
        owner,
        segment_id,
        name=body["name"],
        definition=body["definition"],
        now=now,
        actor=operator_actor() if audited else None,
    )
    session.commit()
    return reads.segment(session, owner, segment_id)


def _remove(owner: Owner, segment_id: str, audited: bool) -> Any:
    session = db.session()
    services.remove(
        session,
        owner,
        segment_id,
        now=clock.utcnow(),
        actor=operator_actor() if audited else None,
    )
    session.commit()
    return "", 204


def _count(owner: Owner, body: dict[str, Any]) -> Any:
    session, now = db.session(), clock.utcnow()
    definition = services.prepare(session, owner, body["definition"], now)
    return {
        "member_count": services.count(session, owner, definition, now),
        "definition": definition,
    }


# A merchant's segments ---------------------------------------------------------------------


@bp.route("/segments", methods=["GET"])
@require(SCOPE)
@bp.arguments(PageArgs, location="query")
@bp.response(200, page_schema(schemas.SegmentOut, "SegmentPage"))
def list_segments(args: dict[str, Any]) -> Any:
    """The merchant's segments, newest first, each with the members it held when last
    evaluated (at its last change, and nightly)."""
    return _list(_merchant(), args)


@bp.route("/segments", methods=["POST"])
@require(SCOPE)
@bp.arguments(schemas.SegmentIn)
@bp.response(201, schemas.SegmentOut)
@bp.alt_response(409, description="The Idempotency-Key was used for another request.")
@bp.alt_response(422, description=UNPROCESSABLE)
def create_segment(body: dict[str, Any]) -> Any:
    """Save a segment over the merchant's customers (members with a purchase here), counting
    only purchases here; evaluated at once. Only members whose latest `profiling` consent is
    granted are ever in a segment. `partners` is the operator's criterion (422)."""
    return _create(_merchant(), body, audited=False)


@bp.route("/segment-counts", methods=["POST"])
@require(SCOPE)
@bp.arguments(schemas.SegmentCountIn)
@bp.response(200, schemas.SegmentCountOut)
@bp.alt_response(422, description=UNPROCESSABLE)
def count_segment(body: dict[str, Any]) -> Any:
    """How many of the merchant's customers a definition holds now, without saving it (only
    members whose latest `profiling` consent is granted count)."""
    return _count(_merchant(), body)


@bp.route("/segments/<segment_id>", methods=["GET"])
@require(SCOPE)
@bp.response(200, schemas.SegmentOut)
def get_segment(segment_id: str) -> Any:
    """One of the merchant's segments; another merchant's is `404`."""
    return reads.segment(db.session(), _merchant(), segment_id)


@bp.route("/segments/<segment_id>", methods=["PUT"])
@require(SCOPE)
@bp.arguments(schemas.SegmentIn)
@bp.response(200, schemas.SegmentOut)
@bp.alt_response(422, description=UNPROCESSABLE)
def change_segment(body: dict[str, Any], segment_id: str) -> Any:
    """Replace a segment's name and definition; evaluated at once."""
    return _change(_merchant(), segment_id, body, audited=False)


@bp.route("/segments/<segment_id>", methods=["DELETE"])
@require(SCOPE)
@bp.response(204)
def delete_segment(segment_id: str) -> Any:
    """Delete a segment: gone from the list, its members forgotten."""
    return _remove(_merchant(), segment_id, audited=False)


# The operator's, coalition-wide ------------------------------------------------------------


@bp.route("/ops/segments", methods=["GET"])
@require("operator", kinds=OPERATOR)
@bp.arguments(PageArgs, location="query")
@bp.response(200, page_schema(schemas.SegmentOut, "OpsSegmentPage"))
def list_ops_segments(args: dict[str, Any]) -> Any:
    """The operator's coalition-wide segments, newest first."""
    return _list(Owner(None), args)


@bp.route("/ops/segments", methods=["POST"])
@require("operator", kinds=OPERATOR)
@bp.arguments(schemas.SegmentIn)
@bp.response(201, schemas.SegmentOut)
@bp.alt_response(409, description="The Idempotency-Key was used for another request.")
@bp.alt_response(422, description=UNPROCESSABLE)
def create_ops_segment(body: dict[str, Any]) -> Any:
    """Save a coalition-wide segment over every member and every partner's purchases;
    evaluated at once, audited. `stores` is a merchant's criterion (422)."""
    return _create(Owner(None), body, audited=True)


@bp.route("/ops/segment-counts", methods=["POST"])
@require("operator", kinds=OPERATOR)
@bp.arguments(schemas.SegmentCountIn)
@bp.response(200, schemas.SegmentCountOut)
@bp.alt_response(422, description=UNPROCESSABLE)
def count_ops_segment(body: dict[str, Any]) -> Any:
    """How many members a coalition-wide definition holds now, without saving it."""
    return _count(Owner(None), body)


@bp.route("/ops/segments/<segment_id>", methods=["GET"])
@require("operator", kinds=OPERATOR)
@bp.response(200, schemas.SegmentOut)
def get_ops_segment(segment_id: str) -> Any:
    """One coalition-wide segment."""
    return reads.segment(db.session(), Owner(None), segment_id)


@bp.route("/ops/segments/<segment_id>", methods=["PUT"])
@require("operator", kinds=OPERATOR)
@bp.arguments(schemas.SegmentIn)
@bp.response(200, schemas.SegmentOut)
@bp.alt_response(422, description=UNPROCESSABLE)
def change_ops_segment(body: dict[str, Any], segment_id: str) -> Any:
    """Replace a coalition-wide segment's name and definition; evaluated at once, audited."""
    return _change(Owner(None), segment_id, body, audited=True)


@bp.route("/ops/segments/<segment_id>", methods=["DELETE"])
@require("operator", kinds=OPERATOR)
@bp.response(204)
def delete_ops_segment(segment_id: str) -> Any:
    """Delete a coalition-wide segment, audited."""
    return _remove(Owner(None), segment_id, audited=True)
