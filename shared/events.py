"""CloudEvents 1.0 envelope (structured JSON mode) and the data schemas of every Hài Lòng event."""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime, timezone
from typing import Any, Literal

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

# Event types: one constant each, so producers and handlers cannot drift apart.
UNIT_UPSERTED = "vn.hailong.unit.upserted.v1"
DOSSIER_COMPLETED = "vn.hailong.dossier.completed.v1"
RATING_ACCEPTED = "vn.hailong.rating.accepted.v1"
ASSESSMENT_RECORDED = "vn.hailong.assessment.recorded.v1"
SCORE_CHANGED = "vn.hailong.score.changed.v1"
TICKET_OPENED = "vn.hailong.ticket.opened.v1"
TICKET_UPDATED = "vn.hailong.ticket.updated.v1"
PUBLICATION_DELIVERED = "vn.hailong.publication.delivered.v1"

UnitLevel = Literal["province", "department", "agency", "ward", "commune", "special_zone", "center"]
DossierChannel = Literal["in_person", "online", "postal"]
DossierResult = Literal["approved", "refused", "withdrawn"]
RatingChannel = Literal["kiosk", "online", "portal", "paper", "phone"]
Overall = Literal["very_satisfied", "satisfied", "normal", "dissatisfied", "very_dissatisfied"]
Attitude = Literal["good", "normal", "bad"]
Reason = Literal["equipment", "informal_cost", "attitude", "procedure", "documents", "processing_time", "other"]

SATISFIED_ANSWERS: frozenset[str] = frozenset({"very_satisfied", "satisfied"})


class EventData(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UnitUpserted(EventData):
    code: str
    name: str
    level: UnitLevel
    parent_code: str | None = None
    lat: float | None = None
    lon: float | None = None
    valid_from: str | None = None
    valid_to: str | None = None
    successor_code: str | None = None


class DossierCompleted(EventData):
    dossier_code: str
    unit_code: str
    procedure_code: str
    procedure_name: str | None = None
    channel: DossierChannel
    received_at: AwareDatetime
    due_at: AwareDatetime
    completed_at: AwareDatetime
    supplement_requests: int = 0
    officer_ids: list[str] = Field(default_factory=list)
    result: DossierResult
    revision: int = 1


class SipasCriteria(EventData):
    access: int | None = Field(None, ge=1, le=5)
    procedure: int | None = Field(None, ge=1, le=5)
    officer: int | None = Field(None, ge=1, le=5)
    result: int | None = Field(None, ge=1, le=5)
    feedback: int | None = Field(None, ge=1, le=5)


class RatingAccepted(EventData):
    """A counted rating. The respondent is present only as a keyed hash (HCMC 104/2024 Art. 3.4)."""

    rating_id: str
    dossier_code: str
    unit_code: str
    officer_ids: list[str] = Field(default_factory=list)
    channel: RatingChannel
    submitted_at: AwareDatetime
    dossier_completed_at: AwareDatetime
    overall: Overall
    attitude: Attitude | None = None
    criteria: SipasCriteria | None = None
    reasons: list[Reason] = Field(default_factory=list)
    respondent_hash: str | None = None


class AssessmentRecorded(EventData):
    unit_code: str
    period: str
    feedback_handling: float | None = Field(None, ge=0, le=18)
    public_listing: bool | None = None
    source: str | None = None


class ScoreChanged(EventData):
    unit_code: str
    unit_name: str | None = None
    period: str
    profile: str
    score: float | None
    max_score: float
    band: str
    components: dict[str, Any]
    ratings: int
    dossiers: int
    version: int = Field(ge=1)
    updated_at: AwareDatetime


class TicketEvent(EventData):
    ticket_id: str
    unit_code: str
    category: str
    source: str
    severity: Literal["normal", "high"]
    status: str
    period: str
    opened_at: AwareDatetime
    due_at: AwareDatetime
    rating_ids: list[str] = Field(default_factory=list)


class PublicationDelivered(EventData):
    target: str
    unit_code: str
    period: str
    profile: str
    version: int
    delivered_at: AwareDatetime


DATA_SCHEMAS: dict[str, type[EventData]] = {
    UNIT_UPSERTED: UnitUpserted,
    DOSSIER_COMPLETED: DossierCompleted,
    RATING_ACCEPTED: RatingAccepted,
    ASSESSMENT_RECORDED: AssessmentRecorded,
    SCORE_CHANGED: ScoreChanged,
    TICKET_OPENED: TicketEvent,
    TICKET_UPDATED: TicketEvent,
    PUBLICATION_DELIVERED: PublicationDelivered,
}


class CloudEvent(BaseModel):
    """The CNCF CloudEvents 1.0 envelope; `id` is the deduplication key across the system."""

    model_config = ConfigDict(extra="allow")

    specversion: Literal["1.0"] = "1.0"
    id: str
    source: str
    type: str
    subject: str | None = None
    time: AwareDatetime
    datacontenttype: Literal["application/json"] = "application/json"
    data: dict[str, Any]

    def parsed_data(self) -> EventData:
        """The typed payload; raises ValueError for an unknown type and ValidationError for bad data."""
        schema = DATA_SCHEMAS.get(self.type)
        if schema is None:
            raise ValueError(f"unknown event type {self.type!r}")
        return schema.model_validate(self.data)

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json", exclude_none=True))

    @classmethod
    def from_bytes(cls, raw: bytes) -> CloudEvent:
        return cls.model_validate(orjson.loads(raw))


def new_event(event_type: str, source: str, subject: str, data: EventData) -> CloudEvent:
    return CloudEvent(
        id=str(uuid.uuid4()),
        source=source,
        type=event_type,
        subject=subject,
        time=datetime.now(timezone.utc),
        data=data.model_dump(mode="json"),
    )


def new_traceparent(parent: str | None = None) -> str:
    """A W3C traceparent continuing `parent`'s trace when it is well formed, else starting one."""
    trace_id = None
    if parent:
        parts = parent.split("-")
        if len(parts) == 4 and len(parts[1]) == 32:
            trace_id = parts[1]
    return f"00-{trace_id or secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


# Which topic (without prefix) carries which event types: the catalogue of docs/asyncapi.json.
EVENTS_BY_TOPIC: dict[str, tuple[str, ...]] = {
    "units.v1": (UNIT_UPSERTED,),
    "dossiers.v1": (DOSSIER_COMPLETED,),
    "ratings.v1": (RATING_ACCEPTED,),
    "assessments.v1": (ASSESSMENT_RECORDED,),
    "scores.v1": (SCORE_CHANGED,),
    "tickets.v1": (TICKET_OPENED, TICKET_UPDATED),
    "publications.v1": (PUBLICATION_DELIVERED,),
}
