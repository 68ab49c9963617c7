"""Prize draws over the API (SPEC 3.3-3.5): the public `GET /draws/{id}`, the member's
`POST /me/draws/{id}/entries` (scope `redeem`) and the operator's `POST /ops/draws`,
`GET /ops/draws` and `POST /ops/draws/{id}/close`. Thin: validate with `draws.schemas`, call
`draws.services` or `draws.reads`, serialise. POSTs that create go through `idempotent`."""

from __future__ import annotations

from typing import Any

from coalition import clock, economics
from coalition.extensions import db
from coalition.ledger.rows import Actor
from coalition.web.access import operator_actor, principal, public, require
from coalition.web.api import blueprint, idempotent, page_schema, paginate
from draws import reads, schemas, services

bp = blueprint("draws", __name__, "Prize draws: open, enter, close, and verify")

OPERATOR = ("operator",)
MEMBER = ("member",)
DRAW = schemas.DrawOut()
ENTERED = schemas.DrawEntriesOut()


@bp.route("/draws/<draw_id>", methods=["GET"])
@public("120/minute")
@bp.response(200, schemas.DrawOut)
def get_draw(draw_id: str) -> Any:
    """A draw, for anyone: its prize, closing time, the seed's hash (public from the opening)
    and the entries so far. Once closed also the seed, the entries list (pseudonyms and their
    entries), its hash and the winners, from which anyone can recompute the winners
    (docs/draws.md)."""
    return reads.draw(db.session(), draw_id, clock.utcnow()).as_dict()


@bp.route("/ops/draws", methods=["POST"])
@require("operator", kinds=OPERATOR)
@bp.arguments(schemas.DrawIn)
@bp.response(201, schemas.DrawOut)
@bp.alt_response(409, description="The Idempotency-Key was used for another request.")
@bp.alt_response(422, description="An invalid field (`validation_error`); nothing written.")
def open_draw(body: dict[str, Any]) -> Any:
    """Open a draw. Its seed (32 random bytes) is drawn now and kept secret until the close;
    its SHA-256, `seed_hash`, is public from now on. `entry_points` is the price of an entry
    in points (`null`: free entries only); `free_entries` gives one entry per purchase of at
    least `min_amount` at the chosen partners while the draw is open."""
    session, now, actor = db.session(), clock.utcnow(), operator_actor()
    free = body.get("free_entries")

    def create() -> tuple[int, dict[str, Any]]:
        view = services.open_draw(
            session,
            prize=body["prize"],
            entry_points=body["entry_points"],
            closes_at=body["closes_at"],
            winners_count=body["winners_count"],
            free=None
            if free is None
            else services.FreeEntries(
                merchants=free["merchants"],
                min_amount_minor=free["min_amount"]["amount"],
                currency=free["min_amount"]["currency"],
            ),
            coalition_currency=economics.terms_at(now, session=session).currency,
            actor=actor,
            now=now,
        )
        return 201, DRAW.dump(view.as_dict())

    return idempotent(create)


@bp.route("/ops/draws", methods=["GET"])
@require("operator", kinds=OPERATOR)
@bp.arguments(schemas.DrawsArgs, location="query")
@bp.response(200, page_schema(schemas.DrawOut, "DrawPage"))
def list_draws(args: dict[str, Any]) -> Any:
    """Every draw, newest first, without the entries lists (read one draw for its list)."""
    session, now = db.session(), clock.utcnow()
    return paginate(
        reads.all_draws(), reads.DRAW_ID, args, lambda row: reads.summary(session, row, now)
    )


@bp.route("/ops/draws/<draw_id>/close", methods=["POST"])
@require("operator", kinds=OPERATOR)
@bp.response(200, schemas.DrawOut)
def close_draw(draw_id: str) -> Any:
    """Close the draw now, even before its closing time: the entries list is frozen, the
    winners drawn and the seed revealed. A closed draw is answered as it is (closing twice
    changes nothing)."""
    session = db.session()
    view = services.close(session, draw_id, now=clock.utcnow(), actor=operator_actor())
    session.commit()
    return view.as_dict()


@bp.route("/me/draws/<draw_id>/entries", methods=["POST"])
@require("redeem", kinds=MEMBER)
@bp.arguments(schemas.DrawEntriesIn, required=False)
@bp.response(201, schemas.DrawEntriesOut)
@bp.alt_response(
    409,
    description="The draw is closed (`draw_closed`) or takes no paid entries "
    "(`no_paid_entries`), or the Idempotency-Key was used for another request.",
)
@bp.alt_response(422, description="Not enough points (`insufficient_points`).")
def enter_draw(body: dict[str, Any], draw_id: str) -> Any:
    """Buy entries with points: `count` x `entry_points`, redeemed at the operator. Refused
    once the draw is closed or its closing time has come."""
    caller = principal()
    member_id = caller.member_id
    assert member_id is not None  # `require(kinds=MEMBER)` let only member tokens in
    session, now = db.session(), clock.utcnow()
    actor = Actor("merchant_client", caller.client_id)
    count = (body or {}).get("count", 1)

    def enter() -> tuple[int, dict[str, Any]]:
        done = services.enter(
            session, draw_id=draw_id, member_id=member_id, entries=count, actor=actor, now=now
        )
        return 201, ENTERED.dump(
            {
                "draw": done.draw,
                "entries": done.entries,
                "points": done.points,
                "transaction": done.transaction,
                "my_paid_entries": done.my_paid_entries,
                "member": {"balance": done.balance, "available": done.available},
            }
        )

    return idempotent(enter)
