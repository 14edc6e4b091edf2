"""Repeated dissatisfaction (Đà Nẵng 5697/2017 Art. 6) — pure.

First year not satisfied: the unit loses PAR-index points and the officer is reminded. Two years or
more in a row: the People's Committee reminds the unit in writing; an officer is considered for
rotation and gets no early salary step. Only years that have ended count.
"""

from __future__ import annotations

NOT_SATISFIED = "not_satisfied"


def consecutive_years_not_satisfied(bands: dict[int, str], year: int) -> int:
    """How many years in a row, ending with `year`, the subject was not satisfied."""
    count = 0
    while bands.get(year - count) == NOT_SATISFIED:
        count += 1
    return count


def is_repeated(bands: dict[int, str], year: int, years: int = 2) -> bool:
    return consecutive_years_not_satisfied(bands, year) >= years
