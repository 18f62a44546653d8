"""What the API expects of the host that runs an engine for it, whichever engine: the
outcome of each event it is given, and why it may take none (``api.hub`` hosts the
embedded engine, ``kafka.api`` the workers' cluster)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str  # accepted, rejected or duplicate
    reason: str | None = None
    error: str | None = None

    def as_dict(self, index: int) -> dict[str, Any]:
        out: dict[str, Any] = {"index": index, "status": self.status}
        if self.reason is not None:
            out |= {"reason": self.reason, "error": self.error}
        return out


ACCEPTED = Outcome("accepted")


class EngineUnavailable(Exception):
    """The engine is not running: not started yet, stopped, or failed."""


class Overloaded(Exception):
    """More lines are waiting for the engine than it is allowed to queue: try later."""
