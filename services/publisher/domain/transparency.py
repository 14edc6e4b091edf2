"""Remediation transparency per unit (Đà Nẵng 5697/2017 Art. 3 step 4, Art. 7.2) — pure, no I/O.

A unit publishes how many remediation tickets it had, how many it closed, the share finished within the
statutory working-day deadline, and the measures it took. No personal data: no rating ids, no people.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

CLOSED_STATUSES = frozenset({"closed", "verified"})
MEASURES_SHOWN = 10


@dataclass(frozen=True)
class TicketFacts:
    category: str
    status: str
    opened_at: datetime
    due_at: datetime
    breached: bool = False
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    measures: str | None = None

    @property
    def finished_at(self) -> datetime | None:
        return self.resolved_at or self.closed_at

    @property
    def closed(self) -> bool:
        return self.closed_at is not None or self.status in CLOSED_STATUSES

    @property
    def on_time(self) -> bool:
        finished = self.finished_at
        return finished is not None and finished <= self.due_at and not self.breached


@dataclass(frozen=True)
class Measure:
    category: str
    taken_at: datetime
    text: str


@dataclass(frozen=True)
class RemediationSummary:
    opened: int = 0
    closed: int = 0
    finished: int = 0
    finished_on_time: int = 0
    open_now: int = 0
    overdue_now: int = 0
    measures: list[Measure] = field(default_factory=list)

    @property
    def on_time_share(self) -> float | None:
        """Share of finished tickets that finished by their deadline; None before any finished."""
        return self.finished_on_time / self.finished if self.finished else None


def summarise(tickets: Iterable[TicketFacts], now: datetime, measures_shown: int = MEASURES_SHOWN) -> RemediationSummary:
    opened = closed = finished = on_time = open_now = overdue = 0
    measures: list[Measure] = []
    for ticket in tickets:
        opened += 1
        closed += ticket.closed
        if ticket.finished_at is not None:
            finished += 1
            on_time += ticket.on_time
        else:
            open_now += 1
            overdue += ticket.breached or ticket.due_at < now
        text = (ticket.measures or "").strip()
        if text:
            measures.append(Measure(ticket.category, ticket.finished_at or ticket.opened_at, text[:1000]))
    measures.sort(key=lambda m: m.taken_at, reverse=True)
    return RemediationSummary(opened, closed, finished, on_time, open_now, overdue, measures[:measures_shown])
