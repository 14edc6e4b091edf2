"""Ranking units by score — pure: ties share a rank (1, 2, 2, 4), and figures that are not final are apart.

Final figures form the ranking. Provisional ones (e.g. HCMC 104/2024 before D and E are in) are ranked
among themselves, never among final figures; units under the minimum count are listed, unranked, as
"insufficient data". `rank_change` is the previous period's rank minus this one (positive: moved up).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


def competition_ranks(scores: Sequence[float]) -> list[int]:
    """Ranks for scores already sorted best first."""
    ranks: list[int] = []
    for position, value in enumerate(scores, start=1):
        if position > 1 and value == scores[position - 2]:
            ranks.append(ranks[-1])
        else:
            ranks.append(position)
    return ranks


@dataclass(frozen=True)
class Entry:
    unit_code: str
    score: float | None
    ranked: bool
    provisional: bool
    row: Any = None  # whatever the caller wants back with the rank


@dataclass
class RankedEntry:
    entry: Entry
    rank: int | None
    rank_change: int | None


@dataclass
class Ranking:
    final: list[RankedEntry] = field(default_factory=list)
    provisional: list[RankedEntry] = field(default_factory=list)
    insufficient_data: list[RankedEntry] = field(default_factory=list)


def _ranked(entries: list[Entry], previous: Mapping[str, int] | None) -> list[RankedEntry]:
    ordered = sorted(entries, key=lambda e: (-(e.score or 0.0), e.unit_code))
    ranks = competition_ranks([e.score or 0.0 for e in ordered])
    out = []
    for entry, rank in zip(ordered, ranks):
        before = previous.get(entry.unit_code) if previous is not None else None
        out.append(RankedEntry(entry, rank, None if before is None else before - rank))
    return out


def rank(entries: Sequence[Entry], previous_ranks: Mapping[str, int] | None = None) -> Ranking:
    """Split and rank; `previous_ranks` are the final ranks of the previous period (same filters)."""
    final = [e for e in entries if e.ranked and e.score is not None]
    provisional = [e for e in entries if not e.ranked and e.provisional and e.score is not None]
    chosen = {id(e) for e in final} | {id(e) for e in provisional}
    rest = sorted((e for e in entries if id(e) not in chosen), key=lambda e: e.unit_code)
    return Ranking(
        final=_ranked(final, previous_ranks or {}),
        provisional=_ranked(provisional, None),
        insufficient_data=[RankedEntry(e, None, None) for e in rest],
    )


def final_ranks(entries: Sequence[Entry]) -> dict[str, int]:
    return {r.entry.unit_code: r.rank for r in _ranked([e for e in entries if e.ranked and e.score is not None], None) if r.rank}
