"""Intake's request and response models: the edge of the contract, validated strictly."""

from __future__ import annotations

import re
import time
from datetime import date, datetime, timedelta, timezone
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.events import (
    Attitude, Complaint, Decree61UnitInputs, DossierChannel, DossierResult, Overall, RatingChannel, Reason,
    SipasCriteria, UnitLevel,
)
from shared.periods import PERIOD_PATTERN

UNIT_CODE = r"^[A-Za-z0-9._-]{1,64}$"
DOSSIER_CODE = r"^[A-Za-z0-9._/-]{1,64}$"
OFFICER_ID = r"^[A-Za-z0-9._-]{1,64}$"
DEVICE_ID = r"^[A-Za-z0-9._:-]{1,128}$"
RATING_ID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
MAX_BATCH = 1000
# No administrative record of this system predates the one-stop-shop era; earlier is a typo or junk.
EARLIEST = datetime(2000, 1, 1, tzinfo=timezone.utc)
EARLIEST_TS = EARLIEST.timestamp()
CLOCK_SKEW_SECONDS = 300  # a kiosk's clock may run a little fast


def _plausible(value: datetime, name: str) -> datetime:
    # Compared as POSIX seconds: cheaper than aware datetimes, and this runs for every item of a batch.
    moment = value.timestamp()
    if moment < EARLIEST_TS:
        raise ValueError(f"{name} is before {EARLIEST.date()}")
    if moment > time.time() + CLOCK_SKEW_SECONDS:
        raise ValueError(f"{name} is in the future")
    return value


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class UnitIn(StrictModel):
    code: str | None = Field(None, pattern=UNIT_CODE, description="must equal the code in the path when given")
    name: str = Field(min_length=1, max_length=255)
    level: UnitLevel
    parent_code: str | None = Field(None, pattern=UNIT_CODE)
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)
    valid_from: date | None = None
    valid_to: date | None = Field(None, description="a retired unit keeps its history and names its successor")
    successor_code: str | None = Field(None, pattern=UNIT_CODE)

    @model_validator(mode="after")
    def _validity(self) -> UnitIn:
        if self.valid_from and self.valid_to and self.valid_to < self.valid_from:
            raise ValueError("valid_to is before valid_from")
        return self


class UnitOut(BaseModel):
    code: str
    name: str
    level: str
    parent_code: str | None
    lat: float | None
    lon: float | None
    valid_from: str | None
    valid_to: str | None
    successor_code: str | None


class OfficerIn(StrictModel):
    """An officer (CBCCVC) of a unit. Devices and phone feed the self-rating check and never leave intake;
    the phone is kept only as a keyed hash."""

    name: str = Field(min_length=1, max_length=255)
    device_ids: list[str] = Field(default_factory=list, max_length=20)
    phone: str | None = Field(None, min_length=6, max_length=20, pattern=r"^\+?[0-9 .-]{6,20}$")
    active: bool = True

    @field_validator("device_ids")
    @classmethod
    def _device_ids(cls, value: list[str]) -> list[str]:
        for device in value:
            if not re.match(DEVICE_ID, device):
                raise ValueError(f"device id {device[:40]!r} is not [A-Za-z0-9._:-]{{1,128}}")
        return list(dict.fromkeys(value))


class OfficerOut(BaseModel):
    unit_code: str
    officer_id: str
    name: str
    device_ids: list[str]
    has_phone: bool
    active: bool


class DossierStepIn(StrictModel):
    agency_code: str = Field(pattern=UNIT_CODE)
    due_at: AwareDatetime
    completed_at: AwareDatetime


class DossierIn(StrictModel):
    dossier_code: str = Field(pattern=DOSSIER_CODE)
    unit_code: str = Field(pattern=UNIT_CODE)
    procedure_code: str = Field(min_length=1, max_length=64)
    procedure_name: str | None = Field(None, max_length=500)
    channel: DossierChannel
    received_at: AwareDatetime
    due_at: AwareDatetime
    completed_at: AwareDatetime
    supplement_requests: int = Field(0, ge=0, le=100)
    officer_ids: list[str] = Field(default_factory=list, max_length=50)
    result: DossierResult
    # Decree 61/2018 per-dossier inputs (optional): indices 3, 4, 2 and 7.
    applicant_contacts: int | None = Field(None, ge=0, le=100)
    agencies_contacted: int | None = Field(None, ge=0, le=100)
    steps: list[DossierStepIn] = Field(default_factory=list, max_length=50)
    complaint: Complaint = "none"

    @field_validator("officer_ids")
    @classmethod
    def _officer_ids(cls, value: list[str]) -> list[str]:
        for officer in value:
            if not re.match(OFFICER_ID, officer):
                raise ValueError(f"officer id {officer[:40]!r} is not [A-Za-z0-9._-]{{1,64}}")
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _chronology(self) -> DossierIn:
        _plausible(self.received_at, "received_at")
        _plausible(self.completed_at, "completed_at")
        if self.completed_at < self.received_at:
            raise ValueError("completed_at is before received_at")
        if self.due_at < self.received_at:
            raise ValueError("due_at is before received_at")
        if self.due_at > self.received_at + timedelta(days=3660):
            raise ValueError("due_at is more than ten years after received_at")
        return self


class Respondent(StrictModel):
    phone: str | None = Field(None, min_length=6, max_length=20, pattern=r"^\+?[0-9 .-]{6,20}$")
    id_number: str | None = Field(None, min_length=9, max_length=12, pattern=r"^[0-9]{9,12}$")


class RatingAnswers(StrictModel):
    """What the citizen answered: shared by a rating and its correction."""

    submitted_at: AwareDatetime
    overall: Overall
    attitude: Attitude | None = None
    criteria: SipasCriteria | None = None
    reasons: list[Reason] = Field(default_factory=list, max_length=7)
    comment: str | None = Field(None, max_length=2000)

    @field_validator("reasons")
    @classmethod
    def _unique_reasons(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))

    @field_validator("submitted_at")
    @classmethod
    def _plausible_submission(cls, value: datetime) -> datetime:
        return _plausible(value, "submitted_at")


class RatingIn(RatingAnswers):
    dossier_code: str = Field(pattern=DOSSIER_CODE)
    channel: RatingChannel
    device_id: str | None = Field(None, pattern=DEVICE_ID)
    respondent: Respondent | None = None
    dossier: DossierIn | None = None

    @model_validator(mode="after")
    def _inline_dossier_matches(self) -> RatingIn:
        if self.dossier is not None and self.dossier.dossier_code != self.dossier_code:
            raise ValueError("dossier.dossier_code differs from dossier_code")
        return self


class CorrectionIn(RatingAnswers):
    """A correction of a rating (e.g. a paper form keyed in wrongly): a new rating that supersedes it."""

    note: str | None = Field(None, max_length=500, description="why the rating is corrected (kept in intake)")


class AssessmentIn(StrictModel):
    """Period inputs that do not come from citizens; fields left out keep their earlier value."""

    period: str = Field(pattern=PERIOD_PATTERN.pattern)
    feedback_handling: float | None = Field(None, ge=0, le=18, description="HCMC 104/2024 D (0–18)")
    public_listing: bool | None = Field(None, description="HCMC 104/2024 E")
    feedback_received: int | None = Field(None, ge=0, le=10_000_000)
    feedback_answered_on_time: int | None = Field(None, ge=0, le=10_000_000)
    feedback_dissatisfied_or_overdue: int | None = Field(None, ge=0, le=10_000_000)
    decree61: Decree61UnitInputs | None = None
    source: str | None = Field(None, max_length=255)

    @model_validator(mode="after")
    def _something_and_consistent(self) -> AssessmentIn:
        if not self.model_fields_set - {"period", "source"}:
            raise ValueError("give at least one input (feedback_handling, public_listing, feedback counts or decree61)")
        received = self.feedback_received
        for name in ("feedback_answered_on_time", "feedback_dissatisfied_or_overdue"):
            value = getattr(self, name)
            if received is not None and value is not None and value > received:
                raise ValueError(f"{name} is more than feedback_received")
        return self


class BatchIn(StrictModel):
    items: list[Any] = Field(min_length=1, max_length=MAX_BATCH, description="up to 1,000 items, each validated on its own")


class RatingBatchIn(StrictModel):
    """A batch of ratings that is valid as a whole: validated in one pass from the JSON bytes (the fast path
    of POST /v1/ratings/batch; any invalid item sends the batch through BatchIn, item by item)."""

    items: list[RatingIn] = Field(min_length=1, max_length=MAX_BATCH)


class BatchItemResult(BaseModel):
    index: int
    status: str
    rating_id: str | None = None
    dossier_code: str | None = None
    error: dict[str, Any] | None = None


class BatchOut(BaseModel):
    items: list[BatchItemResult]
    accepted: int
    failed: int


class RatingAccepted(BaseModel):
    rating_id: str
    status: str


class DossierAccepted(BaseModel):
    dossier_code: str
    revision: int
    released_ratings: int
