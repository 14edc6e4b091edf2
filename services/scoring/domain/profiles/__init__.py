"""The scoring profiles and the version of each in force for a period — pure.

A period is scored by the version in force on its last day (the day the period's results are assessed).
Operators may override named parameters per profile (HAILONG_SCORING_PROFILE_PARAMETERS); every override
applies to every version of that profile and is shown at GET /v1/profiles.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from types import ModuleType
from typing import Any

from services.scoring.domain.periods import bounds
from services.scoring.domain.profiles import decree_61, hcmc_2024, qd766_satisfaction, satisfied_share, sipas
from services.scoring.domain.profiles.base import (
    DEFINITE_BANDS, INSUFFICIENT_DATA, NOT_SATISFIED, PROVISIONAL, SATISFIED, Counts, Figure, Inputs, ProfileVersion,
)
from shared.periods import Period, parse_period

MODULES: dict[str, ModuleType] = {m.NAME: m for m in (hcmc_2024, qd766_satisfaction, decree_61, sipas, satisfied_share)}
DEFAULT_PROFILE = satisfied_share.NAME
OFFICER_PROFILES = (satisfied_share.NAME, sipas.NAME)  # rating-based: meaningful for one officer

__all__ = [
    "DEFAULT_PROFILE", "DEFINITE_BANDS", "INSUFFICIENT_DATA", "MODULES", "NOT_SATISFIED", "OFFICER_PROFILES",
    "PROVISIONAL", "SATISFIED", "Figure", "ProfileBook", "ProfileVersion",
]


class UnknownParameter(ValueError):
    pass


def _with_overrides(parameters: Any, overrides: Mapping[str, Any]) -> Any:
    known = {f.name for f in fields(parameters)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise UnknownParameter(f"unknown parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    values = {k: tuple(tuple(x) for x in v) if k == "bands" else v for k, v in overrides.items()}
    return replace(parameters, **values)


@dataclass(frozen=True)
class ProfileBook:
    """Every profile with its versions, after the operator's overrides."""

    versions: dict[str, tuple[ProfileVersion, ...]]
    # The version in force per (profile, period): looked up for every figure the score publisher makes.
    _in_force: dict[tuple[str, str], ProfileVersion | None] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def build(cls, overrides: Mapping[str, Mapping[str, Any]] | None = None, minimum_count: int | None = None) -> ProfileBook:
        overrides = overrides or {}
        unknown = sorted(set(overrides) - set(MODULES))
        if unknown:
            raise UnknownParameter(f"unknown profile(s) {', '.join(unknown)}; known: {', '.join(MODULES)}")
        versions: dict[str, tuple[ProfileVersion, ...]] = {}
        for name, module in MODULES.items():
            chosen = dict(overrides.get(name, {}))
            if minimum_count is not None:
                chosen.setdefault("minimum_count", minimum_count)
            versions[name] = tuple(replace(v, parameters=_with_overrides(v.parameters, chosen)) for v in module.VERSIONS)
        return cls(versions)

    @property
    def names(self) -> list[str]:
        return list(self.versions)

    def max_score(self, profile: str) -> float:
        return float(MODULES[profile].MAX_SCORE)

    def version_for(self, profile: str, period: Period | str) -> ProfileVersion | None:
        key = (profile, str(period))
        if key not in self._in_force:
            parsed = parse_period(period) if isinstance(period, str) else period
            last_day = bounds(parsed)[1]
            self._in_force[key] = next((v for v in self.versions[profile] if v.in_force_on(last_day)), None)
        return self._in_force[key]

    def score(self, profile: str, period: Period | str, counts: Counts, inputs: Inputs) -> tuple[Figure, ProfileVersion] | None:
        """The figure under the version in force; None when the profile was not in force for the period."""
        version = self.version_for(profile, period)
        if version is None:
            return None
        return MODULES[profile].score(counts, inputs, version.parameters), version

    def describe(self) -> list[dict[str, Any]]:
        out = []
        for name, versions in self.versions.items():
            module = MODULES[name]
            doc = (module.__doc__ or "").strip()
            out.append({
                "profile": name,
                "max_score": module.MAX_SCORE,
                "summary": doc.splitlines()[0],
                "description": " ".join(doc.split()),
                "officer_figures": name in OFFICER_PROFILES,
                "versions": [
                    {"version": v.version, "valid_from": v.valid_from.isoformat(),
                     "valid_to": v.valid_to.isoformat() if v.valid_to else None, "source": v.source,
                     "parameters": asdict(v.parameters)}
                    for v in versions
                ],
            })
        return out
