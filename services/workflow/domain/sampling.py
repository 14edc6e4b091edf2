"""Re-verification sample (phúc tra, Đà Nẵng 5697/2017 Art. 8.2) — pure.

Each period a random 20–30% of each unit's online ratings are re-verified. The draw is reproducible:
every rating gets a keyed hash of (seed, period, unit, rating id) and the lowest ones are taken, so
the same inputs always give the same sample, units cannot predict it without the seed, and a rating's
chance does not depend on the order ratings arrived in.
"""

from __future__ import annotations

import hashlib
import hmac
import math

MIN_RATE, MAX_RATE = 0.20, 0.30


def sample_size(population: int, rate: float) -> int:
    """ceil(rate × n): at least one rating of any unit that has some, never fewer than the rate asks."""
    if not MIN_RATE <= rate <= MAX_RATE:
        raise ValueError(f"the sample rate must be within {MIN_RATE:.0%}–{MAX_RATE:.0%} (Đà Nẵng Art. 8.2), not {rate}")
    return math.ceil(population * rate - 1e-9)


def draw_sample(rating_ids: list[str], *, rate: float, seed: str, period: str, unit_code: str) -> list[str]:
    """The rating ids to re-verify, in draw order."""
    def draw_key(rating_id: str) -> str:
        return hmac.new(seed.encode(), f"{period}|{unit_code}|{rating_id}".encode(), hashlib.sha256).hexdigest()

    unique = sorted(set(rating_ids))
    return sorted(unique, key=draw_key)[: sample_size(len(unique), rate)]


def in_late_sample(rating_id: str, *, rate: float, seed: str, period: str, unit_code: str) -> bool:
    """For a rating that arrives after its period's sample was drawn: the same keyed draw, as a threshold,
    so late ratings get the same chance (about `rate`) and the answer never changes for a rating."""
    sample_size(0, rate)  # validates the rate
    digest = hmac.new(seed.encode(), f"{period}|{unit_code}|{rating_id}".encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") < rate * 2**64
