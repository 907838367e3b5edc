"""Who acts on a case, and the time rules every subject shares."""

from __future__ import annotations

import dataclasses
import datetime as dt

__all__ = ["SYSTEM", "Actor", "aware"]


@dataclasses.dataclass(frozen=True)
class Actor:
    """Who acts: an API key's id and role (``system`` for the scheduler and workers)."""

    id: str
    role: str


SYSTEM = Actor("system", "system")


def aware(moment: dt.datetime | None) -> dt.datetime | None:
    """A stored time as UTC-aware (SQLite gives back naive times, written as UTC)."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment
