"""Domain errors. Each carries the HTTP status and the stable machine `code` of the RFC 9457
problem it becomes at the API edge, so services never speak HTTP yet every refusal has one
meaning everywhere (API, CLI, jobs)."""

from __future__ import annotations

from typing import Any, ClassVar


class CoalitionError(Exception):
    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    title: ClassVar[str] = "Bad request"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def problem(self) -> dict[str, Any]:
        """The RFC 9457 body, without `instance` (the edge adds it)."""
        return {
            "type": f"https://coalition.dev/problems/{self.code.replace('_', '-')}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
            **self.extra,
        }


class NotFound(CoalitionError):
    status, code, title = 404, "not_found", "Not found"


class InvalidRequest(CoalitionError):
    status, code, title = 422, "validation_error", "Invalid request"


class InsufficientPoints(CoalitionError):
    status, code, title = 422, "insufficient_points", "Not enough points"


class RefundExceedsPurchase(CoalitionError):
    status, code, title = 422, "refund_exceeds_purchase", "Refund larger than what is left"


class AlreadyReversed(CoalitionError):
    status, code, title = 409, "already_reversed", "Already reversed"


class HoldNotActive(CoalitionError):
    status, code, title = 409, "hold_not_active", "Hold is not active"


class IdempotencyConflict(CoalitionError):
    status, code, title = 409, "idempotency_conflict", "Idempotency key reused"


class BusinessDayClosed(CoalitionError):
    """An entry dated in a business day that settlement has closed (settlement/runs.py)."""

    status, code, title = 503, "business_day_closed", "Business day closed"
