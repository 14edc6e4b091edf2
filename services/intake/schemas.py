"""Intake's request and response models: the edge of the contract, validated strictly."""

from __future__ import annotations

from datetime import date

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.events import (
    Attitude, DossierChannel, DossierResult, Overall, RatingChannel, Reason, SipasCriteria, UnitLevel,
)

UNIT_CODE = r"^[A-Za-z0-9._-]{1,64}$"
DOSSIER_CODE = r"^[A-Za-z0-9._/-]{1,64}$"


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
    valid_to: date | None = None
    successor_code: str | None = Field(None, pattern=UNIT_CODE)


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

    @model_validator(mode="after")
    def _chronology(self) -> DossierIn:
        if self.completed_at < self.received_at:
            raise ValueError("completed_at is before received_at")
        if self.due_at < self.received_at:
            raise ValueError("due_at is before received_at")
        return self


class Respondent(StrictModel):
    phone: str | None = Field(None, min_length=6, max_length=20, pattern=r"^\+?[0-9 .-]{6,20}$")
    id_number: str | None = Field(None, min_length=9, max_length=12, pattern=r"^[0-9]{9,12}$")


class RatingIn(StrictModel):
    dossier_code: str = Field(pattern=DOSSIER_CODE)
    channel: RatingChannel
    device_id: str | None = Field(None, max_length=128)
    submitted_at: AwareDatetime
    overall: Overall
    attitude: Attitude | None = None
    criteria: SipasCriteria | None = None
    reasons: list[Reason] = Field(default_factory=list, max_length=7)
    comment: str | None = Field(None, max_length=2000)
    respondent: Respondent | None = None
    dossier: DossierIn | None = None

    @field_validator("reasons")
    @classmethod
    def _unique_reasons(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _inline_dossier_matches(self) -> RatingIn:
        if self.dossier is not None and self.dossier.dossier_code != self.dossier_code:
            raise ValueError("dossier.dossier_code differs from dossier_code")
        return self


class RatingAccepted(BaseModel):
    rating_id: str
    status: str


class DossierAccepted(BaseModel):
    dossier_code: str
    revision: int
    released_ratings: int
