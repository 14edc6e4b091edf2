"""Ranking units by score — pure: ties share a rank (1, 2, 2, 4), and figures that are not final are apart.

Final figures form the ranking. Provisional ones (e.g. HCMC 104/2024 before D and E are in) are ranked
among themselves, never among final figures; units under the minimum count are listed, unranked, as
"insufficient data". `rank_change` is the previous period's rank minus this one (positive: moved up).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple


def competition_ranks(scores: Sequence[float]) -> list[int]:
    """Ranks for scores already sorted best first."""
    ranks: list[int] = []
    for position, value in enumerate(scores, start=1):
        if position > 1 and value == scores[position - 2]:
            ranks.append(ranks[-1])
        else:
            ranks.append(position)
    return ranks


class Entry(NamedTuple):  # a tuple: rankings of thousands of units are built per request
    unit_code: str
    score: float | None
    ranked: bool
    provisional: bool
    row: Any = None  # whatever the caller wants back with the rank


class RankedEntry(NamedTuple):
    entry: Entry
    rank: int | None
    rank_change: int | None


@dataclass
class Ranking:
    final: list[RankedEntry] = field(default_factory=list)
    provisional: list[RankedEntry] = field(default_factory=list)
    insufficient_data: list[RankedEntry] = field(default_factory=list)


def _by_score(entry: Entry) -> tuple[float, str]:
    return (-(entry.score or 0.0), entry.unit_code)


def _ranked(entries: list[Entry], previous: Mapping[str, int] | None) -> list[RankedEntry]:
    ordered = sorted(entries, key=_by_score)
    ranks = competition_ranks([e.score or 0.0 for e in ordered])
    if not previous:
        return [RankedEntry(entry, rank, None) for entry, rank in zip(ordered, ranks)]
    out = []
    for entry, rank in zip(ordered, ranks):
        before = previous.get(entry.unit_code)
        out.append(RankedEntry(entry, rank, None if before is None else before - rank))
    return out


def rank(entries: Sequence[Entry], previous_ranks: Mapping[str, int] | None = None) -> Ranking:
    """Split and rank; `previous_ranks` are the final ranks of the previous period (same filters)."""
    final, provisional, rest = [], [], []
    for entry in entries:
        if entry.score is not None and entry.ranked:
            final.append(entry)
        elif entry.score is not None and entry.provisional:
            provisional.append(entry)
        else:
            rest.append(entry)
    return Ranking(
        final=_ranked(final, previous_ranks or {}),
        provisional=_ranked(provisional, None),
        insufficient_data=[RankedEntry(e, None, None) for e in sorted(rest, key=lambda e: e.unit_code)],
    )


def ranks_of(scored: Sequence[tuple[str, float]]) -> dict[str, int]:
    """Competition ranks of (unit, score) pairs already sorted best first (e.g. the previous period's final ranking)."""
    return dict(zip((unit for unit, _ in scored), competition_ranks([score for _, score in scored])))
