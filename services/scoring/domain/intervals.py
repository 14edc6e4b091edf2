"""Confidence intervals for shares — pure: a unit with 3 ratings must not look as sure as one with 3,000.

Wilson score interval (Wilson 1927; Agresti & Coull 1998 recommend it over the normal approximation for
small samples and shares near 0 or 1).
"""

from __future__ import annotations

import math

Z_95 = 1.959963984540054  # two-sided 95%


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float] | None:
    """(low, high) bounds of the share `successes / trials`; None when there are no trials."""
    if trials <= 0:
        return None
    if not 0 <= successes <= trials:
        raise ValueError(f"{successes} successes of {trials} trials")
    share = successes / trials
    z2 = z * z
    denominator = 1 + z2 / trials
    centre = (share + z2 / (2 * trials)) / denominator
    half_width = z / denominator * math.sqrt(share * (1 - share) / trials + z2 / (4 * trials * trials))
    return max(0.0, centre - half_width), min(1.0, centre + half_width)


def share_component(successes: int, trials: int, digits: int = 6) -> dict[str, object]:
    """A share with its counts and its 95% Wilson interval, as every profile reports one."""
    interval = wilson_interval(successes, trials)
    return {
        "value": round(successes / trials, digits) if trials else None,
        "points": successes,
        "of": trials,
        "wilson_95": [round(interval[0], digits), round(interval[1], digits)] if interval else None,
    }
