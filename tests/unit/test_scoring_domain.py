"""Scoring's small pure pieces: competition ranking, Wilson intervals, period arithmetic."""

from __future__ import annotations

import pytest

from services.scoring.domain.intervals import wilson_interval
from services.scoring.domain.periods import bounds, periods_between, periods_of_month, previous
from services.scoring.domain.ranking import Entry, competition_ranks, rank
from shared.periods import parse_period


def test_ties_share_a_rank_and_the_next_rank_skips() -> None:
    assert competition_ranks([95.0, 90.0, 90.0, 80.0]) == [1, 2, 2, 4]
    assert competition_ranks([]) == []
    assert competition_ranks([70.0, 70.0, 70.0]) == [1, 1, 1]


def test_ranking_keeps_provisional_and_thin_figures_apart_and_reports_rank_change() -> None:
    entries = [
        Entry("A", 90.0, True, False), Entry("B", 95.0, True, False), Entry("C", 90.0, True, False),
        Entry("D", 99.0, False, True),  # provisional: not ranked among final figures
        Entry("E", 100.0, False, False),  # insufficient data
        Entry("F", 80.0, True, False),
    ]
    result = rank(entries, previous_ranks={"A": 1, "B": 3, "F": 4})
    assert [(r.entry.unit_code, r.rank, r.rank_change) for r in result.final] == [
        ("B", 1, 2), ("A", 2, -1), ("C", 2, None), ("F", 4, 0),
    ]
    assert [(r.entry.unit_code, r.rank) for r in result.provisional] == [("D", 1)]
    assert [(r.entry.unit_code, r.rank) for r in result.insufficient_data] == [("E", None)]


@pytest.mark.parametrize(
    ("successes", "trials", "low", "high"),
    [
        # Reference values (Wilson 1927 / Newcombe 1998, table I): 81/263 → 0.2553–0.3662; 15/148 → 0.0624–0.1605.
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (3, 3, 0.4385, 1.0),
    ],
)
def test_wilson_interval_matches_published_values(successes: int, trials: int, low: float, high: float) -> None:
    interval = wilson_interval(successes, trials)
    assert interval is not None
    assert interval[0] == pytest.approx(low, abs=1e-4) and interval[1] == pytest.approx(high, abs=1e-4)


def test_three_ratings_are_far_less_certain_than_three_thousand() -> None:
    few = wilson_interval(3, 3)
    many = wilson_interval(3000, 3000)
    assert few is not None and many is not None
    assert few[0] < 0.45 < 0.99 < many[0]
    assert wilson_interval(0, 0) is None


def test_period_arithmetic() -> None:
    assert str(previous(parse_period("2026-01"))) == "2025-12"
    assert str(previous(parse_period("2026-Q1"))) == "2025-Q4"
    assert str(previous(parse_period("2026-H2"))) == "2026-H1"
    assert str(previous(parse_period("2026"))) == "2025"
    assert [str(p) for p in periods_between(parse_period("2025-11"), parse_period("2026-02"))] == ["2025-11", "2025-12", "2026-01", "2026-02"]
    assert bounds(parse_period("2024-02"))[1].day == 29
    assert [d.isoformat() for d in bounds(parse_period("2026-Q4"))] == ["2026-10-01", "2026-12-31"]
    assert periods_of_month("2026-04") == ["2026-04", "2026-Q2", "2026-H1", "2026"]
    with pytest.raises(ValueError):
        periods_between(parse_period("2026-01"), parse_period("2026-Q2"))
