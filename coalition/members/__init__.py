"""Members: the people who collect and spend points, their cards and their rotating redemption
codes. `models` holds the table, `cards` and `codes` the rules of SPEC 2 (Cards and proof of
presence), `services` the operations, `api` the member-facing HTTP routes."""

from coalition.members.models import Member
from coalition.members.services import create_member

__all__ = ["Member", "create_member"]
