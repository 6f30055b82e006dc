"""The one shape of a refusal from the service's doors, which the API answers as JSON with its status."""
from __future__ import annotations


class Refused(Exception):
    """A request refused on purpose (not found, not allowed now, invalid); `status` is the HTTP status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
