"""Ranking units by score: ties share a rank (1, 2, 2, 4), standard competition ranking."""

from __future__ import annotations

from collections.abc import Sequence


def competition_ranks(scores: Sequence[float]) -> list[int]:
    """Ranks for scores already sorted best first."""
    ranks: list[int] = []
    for position, value in enumerate(scores, start=1):
        if position > 1 and value == scores[position - 2]:
            ranks.append(ranks[-1])
        else:
            ranks.append(position)
    return ranks
