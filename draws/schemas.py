"""Request and response bodies of the draws API (SPEC 3.3-3.5). Names are unique across the
API (the OpenAPI document names its components after them)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from coalition.ledger.rows import MAX_AMOUNT_MINOR, MAX_POINTS
from coalition.web.api import PageArgs, Strict
from coalition.web.fields import WholeNumber, text
from draws.services import MAX_ENTRIES_PER_CALL, MAX_PARTNERS, MAX_PRIZE, MAX_WINNERS

_HEX64 = r"^[0-9a-f]{64}$"
_ENTRANT = r"^[0-9a-f]{24}$"


class DrawMinAmountIn(Strict):
    amount = WholeNumber(
        required=True,
        validate=validate.Range(min=1, max=MAX_AMOUNT_MINOR),
        metadata={"description": "in minor units of `currency`"},
    )
    currency = fields.String(
        required=True,
        validate=validate.Regexp(r"[A-Z]{3}\Z", error="must be an ISO 4217 code such as EUR"),
        metadata={"description": "the coalition's settlement currency"},
    )


class DrawFreeEntriesIn(Strict):
    merchants = fields.List(
        fields.String(validate=validate.Length(min=1, max=40)),
        required=True,
        validate=validate.Length(min=1, max=MAX_PARTNERS),
        metadata={"description": "active partners (`mer_` ids) whose purchases earn entries"},
    )
    min_amount = fields.Nested(
        DrawMinAmountIn,
        required=True,
        metadata={"description": "one free entry per purchase of at least this much"},
    )


class DrawIn(Strict):
    prize = text(MAX_PRIZE, required=True)
    entry_points = WholeNumber(
        required=True,
        allow_none=True,
        validate=validate.Range(min=1, max=MAX_POINTS),
        metadata={"description": "points per entry; `null`: no paid entries (free entries only)"},
    )
    closes_at = fields.AwareDateTime(
        format="iso",
        required=True,
        metadata={"description": "when entries end and the winners are drawn (within a year)"},
    )
    winners_count = WholeNumber(required=True, validate=validate.Range(min=1, max=MAX_WINNERS))
    free_entries = fields.Nested(
        DrawFreeEntriesIn,
        allow_none=True,
        metadata={
            "description": "free entries earned by purchases at chosen partners while the draw "
            "is open: one per purchase of at least `min_amount` (after its refunds)"
        },
    )


class DrawPartnerOut(Schema):
    id = fields.String()
    name = fields.String()


class DrawMinAmountOut(Schema):
    amount = fields.Integer()
    currency = fields.String()


class DrawFreeEntriesOut(Schema):
    merchants = fields.List(fields.Nested(DrawPartnerOut))
    min_amount = fields.Nested(DrawMinAmountOut)


class DrawEntrantOut(Schema):
    entrant = fields.String(
        metadata={"description": "the entrant's pseudonym in this draw", "pattern": _ENTRANT}
    )
    entries = fields.Integer()


class DrawOut(Schema):
    id = fields.String()
    prize = fields.String()
    entry_points = fields.Integer(allow_none=True)
    closes_at = fields.DateTime(format="iso")
    winners_count = fields.Integer()
    seed_hash = fields.String(
        metadata={"description": "SHA-256 of the 32-byte seed, hex", "pattern": _HEX64}
    )
    entries_count = fields.Integer(
        metadata={"description": "entries so far (paid, and free ones earned); frozen at close"}
    )
    status = fields.String(validate=validate.OneOf(("open", "closed")))
    free_entries = fields.Nested(DrawFreeEntriesOut, allow_none=True)
    closed_at = fields.DateTime(format="iso")
    seed = fields.String(metadata={"description": "the 32-byte seed, hex; once closed"})
    entries_hash = fields.String(
        metadata={"description": "SHA-256 of the canonical entries list, hex; once closed"}
    )
    entries = fields.List(
        fields.Nested(DrawEntrantOut),
        metadata={"description": "the closed list, by entrant; once closed"},
    )
    winners = fields.List(
        fields.String(), metadata={"description": "entrants, in the order drawn; once closed"}
    )


class DrawsArgs(PageArgs):
    pass


class DrawEntriesIn(Strict):
    count = WholeNumber(
        load_default=1,
        validate=validate.Range(min=1, max=MAX_ENTRIES_PER_CALL),
        metadata={"description": "how many entries to buy (default 1)"},
    )


class DrawEntriesMemberOut(Schema):
    balance = fields.Integer()
    available = fields.Integer()


class DrawEntriesOut(Schema):
    draw = fields.String()
    entries = fields.Integer(metadata={"description": "entries bought by this call"})
    points = fields.Integer(metadata={"description": "points redeemed for them"})
    transaction = fields.String(metadata={"description": "the redemption (`txn_`)"})
    my_paid_entries = fields.Integer(
        metadata={"description": "the member's paid entries in this draw so far"}
    )
    member = fields.Nested(DrawEntriesMemberOut)
