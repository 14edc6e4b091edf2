"""The walking skeleton's profile (share satisfied) and competition ranking."""

import pytest

from services.scoring.domain import satisfied_share
from services.scoring.domain.ranking import competition_ranks


def test_ties_share_a_rank_and_the_next_rank_skips() -> None:
    assert competition_ranks([95.0, 90.0, 90.0, 80.0]) == [1, 2, 2, 4]
    assert competition_ranks([]) == []
    assert competition_ranks([70.0, 70.0, 70.0]) == [1, 1, 1]


def test_share_satisfied_is_a_percentage_with_its_counts() -> None:
    result = satisfied_share.score(ratings=40, satisfied=34)
    assert result.score == 85.0
    assert result.band == "satisfied"
    assert result.components == {"satisfied": 34, "ratings": 40, "share": 0.85}


def test_below_the_threshold_is_not_satisfied_and_few_ratings_are_insufficient() -> None:
    assert satisfied_share.score(ratings=10, satisfied=7).band == "not_satisfied"
    assert satisfied_share.score(ratings=10, satisfied=8).band == "satisfied"  # 0.80 is the threshold, inclusive
    few = satisfied_share.score(ratings=3, satisfied=3)
    assert few.band == "insufficient_data" and few.score == 100.0


def test_no_ratings_has_no_score() -> None:
    assert satisfied_share.score(0, 0).score is None


def test_inconsistent_counts_are_refused() -> None:
    with pytest.raises(ValueError):
        satisfied_share.score(ratings=2, satisfied=3)
