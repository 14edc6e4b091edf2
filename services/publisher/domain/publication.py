"""What the public may see of a unit's score, and how published results are ranked — pure, no I/O.

Public outputs (page, open data, the map, the portal feed) carry unit figures only: nothing about officers.
A unit with fewer ratings than the threshold shows "insufficient data" instead of figures, so that a
handful of respondents cannot be singled out. Profiles are data: any profile's bands pass through.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

INSUFFICIENT = "insufficient_data"
LIVE = "live"
OFFICIAL = "official"
EDITIONS = (LIVE, OFFICIAL)

# Band names scoring's profiles use, by how good they are; unknown bands fall back to the score's share.
_GOOD_BANDS = frozenset({"excellent", "very_good", "good", "satisfied", "very_satisfied", "met", "target_met", "above_target"})
_FAIR_BANDS = frozenset({"fair", "average", "medium", "normal", "acceptable", "near_target"})
_POOR_BANDS = frozenset({"weak", "poor", "not_satisfied", "dissatisfied", "unsatisfied", "below_target", "not_met"})


@dataclass(frozen=True)
class UnitInfo:
    code: str
    name: str | None = None
    level: str | None = None
    parent_code: str | None = None
    lat: float | None = None
    lon: float | None = None
    valid_to: str | None = None
    successor_code: str | None = None


@dataclass(frozen=True)
class PublicResult:
    """One unit's published figure for a period and profile (an edition: live, or an official snapshot)."""

    unit_code: str
    unit_name: str | None
    level: str | None
    parent_code: str | None
    period: str
    profile: str
    score: float | None
    max_score: float
    band: str
    provisional: bool
    ratings: int
    dossiers: int
    components: dict[str, Any] | None
    version: int
    updated_at: str
    withheld: bool = False  # figures held back (too few ratings)
    rank: int | None = None  # among the units it was ranked with

    @property
    def rankable(self) -> bool:
        return not self.withheld and not self.provisional and self.score is not None and self.band != INSUFFICIENT

    def as_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank, "unit_code": self.unit_code, "unit_name": self.unit_name, "level": self.level,
            "parent_code": self.parent_code, "period": self.period, "profile": self.profile, "score": self.score,
            "max_score": self.max_score, "band": self.band, "provisional": self.provisional, "ratings": self.ratings,
            "dossiers": self.dossiers, "components": self.components, "version": self.version,
            "updated_at": self.updated_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PublicResult:
        return cls(
            unit_code=data["unit_code"], unit_name=data.get("unit_name"), level=data.get("level"),
            parent_code=data.get("parent_code"), period=data["period"], profile=data["profile"], score=data.get("score"),
            max_score=float(data["max_score"]), band=data["band"], provisional=bool(data.get("provisional")),
            ratings=int(data.get("ratings") or 0), dossiers=int(data.get("dossiers") or 0),
            components=data.get("components"), version=int(data["version"]), updated_at=data["updated_at"],
            withheld=data["band"] == INSUFFICIENT and data.get("score") is None, rank=data.get("rank"),
        )


def public_result(score: Mapping[str, Any], unit: UnitInfo | None, min_ratings: int) -> PublicResult:
    """A `score.changed` payload as the public may see it: unit facts from the registry, small counts withheld."""
    ratings = int(score.get("ratings") or 0)
    withheld = ratings < min_ratings or score.get("band") == INSUFFICIENT or score.get("score") is None
    return PublicResult(
        unit_code=score["unit_code"],
        unit_name=(unit.name if unit and unit.name else None) or score.get("unit_name"),
        level=unit.level if unit else None,
        parent_code=unit.parent_code if unit else None,
        period=score["period"],
        profile=score["profile"],
        score=None if withheld else score.get("score"),
        max_score=float(score["max_score"]),
        band=INSUFFICIENT if withheld else score["band"],
        provisional=bool(score.get("provisional", False)),
        ratings=ratings,
        dossiers=int(score.get("dossiers") or 0),
        components=None if withheld else dict(score.get("components") or {}),
        version=int(score["version"]),
        updated_at=str(score["updated_at"]),
        withheld=withheld,
    )


def competition_ranks(scores: list[float]) -> list[int]:
    """Ranks of scores already sorted best first; ties share a rank and the next rank skips (1, 2, 2, 4)."""
    ranks: list[int] = []
    for index, value in enumerate(scores):
        ranks.append(ranks[-1] if index and value == scores[index - 1] else index + 1)
    return ranks


def rank_results(results: Iterable[PublicResult]) -> list[PublicResult]:
    """Final figures ranked best first; then provisional ones (not ranked among finals); then withheld ones."""
    final: list[PublicResult] = []
    provisional: list[PublicResult] = []
    rest: list[PublicResult] = []
    for result in results:
        if result.rankable:
            final.append(result)
        elif result.provisional and not result.withheld and result.score is not None:
            provisional.append(result)
        else:
            rest.append(result)
    best_first = lambda r: (-(r.score or 0.0), r.unit_code)  # noqa: E731
    final.sort(key=best_first)
    provisional.sort(key=best_first)
    rest.sort(key=lambda r: r.unit_code)
    ranked = [replace(r, rank=rank) for r, rank in zip(final, competition_ranks([r.score or 0.0 for r in final]))]
    return ranked + [replace(r, rank=None) for r in provisional + rest]


def peer_rank(result: PublicResult, better_scores: int) -> int | None:
    """Rank of a unit among its peers, given how many rankable peers score strictly higher."""
    return better_scores + 1 if result.rankable else None


def band_tone(band: str, score: float | None, max_score: float) -> str:
    """good | fair | poor | none — the colour family a band is drawn in (its name is always shown too)."""
    if band == INSUFFICIENT or score is None:
        return "none"
    if band in _GOOD_BANDS:
        return "good"
    if band in _POOR_BANDS:
        return "poor"
    if band in _FAIR_BANDS:
        return "fair"
    share = score / max_score if max_score else 0.0
    return "good" if share >= 0.9 else "fair" if share >= 0.7 else "poor"


def profile_filter(setting: str) -> frozenset[str]:
    """Profiles named in a comma-separated setting; empty means every profile."""
    return frozenset(part.strip() for part in setting.split(",") if part.strip())


def pushes_profile(selected: frozenset[str], profile: str) -> bool:
    return not selected or profile in selected
