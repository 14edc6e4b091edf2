"""Integrity rules of a rating, pure: which flags hold it back from scoring until a person verifies it.

Đà Nẵng 5697/2017 Art. 4.2.a counts an officer rating their own service, or distorting the survey, as a
violation; Art. 8.2 has ratings re-verified. Intake gathers the evidence, these rules decide.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class IntegrityLimits:
    burst_max_ratings: int  # more than this many ratings from one kiosk …
    burst_window_seconds: float  # … within this many seconds is a burst
    repeat_max_ratings: int  # more than this many ratings by one respondent for one officer …
    repeat_window_days: float  # … within this many days


@dataclass(frozen=True)
class Evidence:
    """What intake knows about one rating when its dossier (and so its unit) is known."""

    unit_code: str
    device_id: str | None = None
    device_owner: str | None = None  # officer of the unit the device is registered to
    phone_owner: str | None = None  # officer of the unit (or of the dossier) whose phone the respondent gave
    device_ratings_in_window: int = 0  # ratings from this device in the burst window, this one included
    respondent_ratings_per_officer: dict[str, int] = field(default_factory=dict)  # in the repeat window, this one included


@dataclass(frozen=True)
class Flag:
    rule: str  # staff_device | staff_phone | kiosk_burst | repeat_respondent
    detail: str


def flags_for(evidence: Evidence, limits: IntegrityLimits) -> list[Flag]:
    """Every rule the rating trips, each with a reason a verifier can act on; empty when it counts at once."""
    flags: list[Flag] = []
    if evidence.device_owner is not None:
        flags.append(Flag("staff_device", f"device {evidence.device_id} is registered to officer {evidence.device_owner} of unit {evidence.unit_code}"))
    if evidence.phone_owner is not None:
        flags.append(Flag("staff_phone", f"the respondent's phone is that of officer {evidence.phone_owner}"))
    if evidence.device_id is not None and evidence.device_ratings_in_window > limits.burst_max_ratings:
        flags.append(Flag(
            "kiosk_burst",
            f"{evidence.device_ratings_in_window} ratings from device {evidence.device_id} within "
            f"{limits.burst_window_seconds:g} s (more than {limits.burst_max_ratings})",
        ))
    for officer_id, count in sorted(evidence.respondent_ratings_per_officer.items()):
        if count > limits.repeat_max_ratings:
            flags.append(Flag(
                "repeat_respondent",
                f"{count} ratings by the same respondent for officer {officer_id} within "
                f"{limits.repeat_window_days:g} days (more than {limits.repeat_max_ratings})",
            ))
    return flags
