"""CloudEvents 1.0 envelope (structured JSON mode) and the data schemas of every Hài Lòng event."""

from __future__ import annotations

import secrets
from datetime import datetime, timezone
from typing import Annotated, Any, Literal, Union

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, create_model

from shared.ids import new_id

# Event types: one constant each, so producers and handlers cannot drift apart.
# The service that owns a topic is the only one that changes the schemas of the events on it.
UNIT_UPSERTED = "vn.hailong.unit.upserted.v1"  # units.v1, intake
OFFICER_UPSERTED = "vn.hailong.officer.upserted.v1"  # units.v1, intake
DOSSIER_COMPLETED = "vn.hailong.dossier.completed.v1"  # dossiers.v1, intake
RATING_ACCEPTED = "vn.hailong.rating.accepted.v1"  # ratings.v1, intake
RATING_FLAGGED = "vn.hailong.rating.flagged.v1"  # ratings.v1, intake
ASSESSMENT_RECORDED = "vn.hailong.assessment.recorded.v1"  # assessments.v1, intake
RATING_VERIFIED = "vn.hailong.rating.verified.v1"  # verifications.v1, workflow
SCORE_CHANGED = "vn.hailong.score.changed.v1"  # scores.v1, scoring
SCORE_THRESHOLD_CROSSED = "vn.hailong.score.threshold_crossed.v1"  # scores.v1, scoring
OFFICER_SCORE_CHANGED = "vn.hailong.officer_score.changed.v1"  # scores.v1, scoring (restricted: never published)
TICKET_OPENED = "vn.hailong.ticket.opened.v1"  # tickets.v1, workflow
TICKET_UPDATED = "vn.hailong.ticket.updated.v1"  # tickets.v1, workflow
PUBLICATION_DELIVERED = "vn.hailong.publication.delivered.v1"  # publications.v1, publisher

UnitLevel = Literal["province", "department", "agency", "ward", "commune", "special_zone", "center"]
FlagRule = Literal["staff_device", "staff_phone", "kiosk_burst", "repeat_respondent"]
Verdict = Literal["genuine", "not_genuine"]
Complaint = Literal["none", "filed", "verified"]
DossierChannel = Literal["in_person", "online", "postal"]
DossierResult = Literal["approved", "refused", "withdrawn"]
RatingChannel = Literal["kiosk", "online", "portal", "paper", "phone"]
Overall = Literal["very_satisfied", "satisfied", "normal", "dissatisfied", "very_dissatisfied"]
Attitude = Literal["good", "normal", "bad"]
Reason = Literal["equipment", "informal_cost", "attitude", "procedure", "documents", "processing_time", "other"]

SATISFIED_ANSWERS: frozenset[str] = frozenset({"very_satisfied", "satisfied"})


class EventData(BaseModel):
    # Tolerant reader: schemas evolve by adding optional fields, and a consumer still on the previous
    # release must apply such an event, not dead-letter it, during a rolling deploy.
    model_config = ConfigDict(extra="ignore", frozen=True)


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


class OfficerUpserted(EventData):
    """An officer (CBCCVC) of a unit. Key on units.v1: `<unit_code>/officers/<officer_id>` (compaction keeps
    one record per officer). No phone or device ids: those stay in intake for the self-rating check."""

    officer_id: str
    unit_code: str
    name: str
    active: bool = True


class DossierStep(EventData):
    """One participating agency's step of a dossier (Decree 61/2018 index 2: step time against its limit)."""

    agency_code: str
    due_at: AwareDatetime
    completed_at: AwareDatetime


class DossierCompleted(EventData):
    """A completed dossier; a correction is the same dossier_code with a higher `revision`.

    The optional fields feed Decree 61/2018's per-dossier indices; when absent the profile uses its
    documented fallback (e.g. `supplement_requests` for the applicant's contacts)."""

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
    applicant_contacts: int | None = Field(None, ge=0)  # Decree 61 index 3
    agencies_contacted: int | None = Field(None, ge=0)  # Decree 61 index 4: 0 none, 1 only the one-stop desk
    steps: list[DossierStep] = Field(default_factory=list)  # Decree 61 index 2
    complaint: Complaint = "none"  # harassment complaint (Decree 61 index 7; QĐ 766 "with a complaint")


class SipasCriteria(EventData):
    access: int | None = Field(None, ge=1, le=5)
    procedure: int | None = Field(None, ge=1, le=5)
    officer: int | None = Field(None, ge=1, le=5)
    result: int | None = Field(None, ge=1, le=5)
    feedback: int | None = Field(None, ge=1, le=5)


class RatingAccepted(EventData):
    """A counted rating. The respondent is present only as a keyed hash (HCMC 104/2024 Art. 3.4).

    A correction is a new rating whose `supersedes` names the rating it replaces; consumers drop the
    superseded one's contribution (never an edit in place)."""

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
    supersedes: str | None = None


class Flag(EventData):
    rule: FlagRule
    detail: str


class RatingFlagged(RatingAccepted):
    """A rating held back from scoring until verified (Đà Nẵng 5697/2017 Art. 4.2.a forbids self-rating).

    Consumers keep it aside; `rating.verified` with verdict `genuine` makes it count, `not_genuine` drops it."""

    flags: list[Flag] = Field(min_length=1)


class RatingVerified(EventData):
    """The result of a re-verification (phúc tra, Đà Nẵng 5697/2017 Art. 8.2) of one rating.

    `not_genuine` removes the rating from every figure; `genuine` clears a flagged rating so it counts."""

    task_id: str
    rating_id: str
    dossier_code: str
    unit_code: str
    verdict: Verdict
    reason: Literal["sample", "flagged"]
    verified_at: AwareDatetime


class Decree61UnitInputs(EventData):
    """Decree 61/2018 indices scored per unit, not per dossier (0, 1 or 2 points each)."""

    one_stop_handling: int | None = Field(None, ge=0, le=2)  # index 5
    disclosure: int | None = Field(None, ge=0, le=2)  # index 6
    feedback_handling: int | None = Field(None, ge=0, le=2)  # index 8
    online_services: int | None = Field(None, ge=0, le=2)  # index 9


class AssessmentRecorded(EventData):
    """Period inputs that do not come from citizens. Fields left out are unchanged: the newest value of
    each field per unit and period holds."""

    unit_code: str
    period: str
    feedback_handling: float | None = Field(None, ge=0, le=18)  # HCMC 104/2024 D
    public_listing: bool | None = None  # HCMC 104/2024 E
    feedback_received: int | None = Field(None, ge=0)  # QĐ 766 satisfaction sub-scores 1 and 2
    feedback_answered_on_time: int | None = Field(None, ge=0)
    feedback_dissatisfied_or_overdue: int | None = Field(None, ge=0)
    decree61: Decree61UnitInputs | None = None
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
    provisional: bool = False  # e.g. HCMC 104/2024 until D and E of the period are in
    # Optional, added by scoring (issue 4): what a public ranking row needs beyond the figure itself.
    profile_version: str | None = None  # the profile's version in force for the period
    sample_size: int | None = None  # what the minimum count is compared with
    ranked: bool | None = None  # False: provisional or insufficient data, listed apart from the ranking
    unit_level: str | None = None  # from the unit registry, for level / parent filters
    parent_code: str | None = None


class ScoreThresholdCrossed(EventData):
    """A unit's band for a period and profile crossed into, or out of, "not satisfied"."""

    unit_code: str
    period: str
    profile: str
    direction: Literal["became_not_satisfied", "recovered"]
    score: float | None
    band: str
    version: int = Field(ge=1)
    at: AwareDatetime


class OfficerScoreChanged(EventData):
    """An officer's figure for a period. Restricted (unit heads, Home Affairs): never published."""

    officer_id: str
    unit_code: str
    period: str
    profile: str
    score: float | None
    max_score: float
    band: str
    components: dict[str, Any]
    ratings: int
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
    breached: bool = False
    resolved_at: AwareDatetime | None = None
    closed_at: AwareDatetime | None = None
    measures: str | None = None  # the public summary of what the unit did; no personal data
    escalated_to: Literal["home_affairs", "peoples_committee"] | None = None  # who supervises it now (breach, Art. 6)
    rating_count: int | None = Field(None, ge=0)  # ratings attached; rating_ids lists at most the first 1,000


class PublicationDelivered(EventData):
    target: str
    unit_code: str
    period: str
    profile: str
    version: int
    delivered_at: AwareDatetime
    edition: Literal["live", "official"] = "live"  # official: a frozen quarter/year snapshot; version is its version


DATA_SCHEMAS: dict[str, type[EventData]] = {
    UNIT_UPSERTED: UnitUpserted,
    OFFICER_UPSERTED: OfficerUpserted,
    DOSSIER_COMPLETED: DossierCompleted,
    RATING_ACCEPTED: RatingAccepted,
    RATING_FLAGGED: RatingFlagged,
    ASSESSMENT_RECORDED: AssessmentRecorded,
    RATING_VERIFIED: RatingVerified,
    SCORE_CHANGED: ScoreChanged,
    SCORE_THRESHOLD_CROSSED: ScoreThresholdCrossed,
    OFFICER_SCORE_CHANGED: OfficerScoreChanged,
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
        if isinstance(self.data, EventData) and type(self.data) is schema:
            return self.data  # a typed envelope (typed_event_from_bytes): validated already
        if schema is None:
            raise ValueError(f"unknown event type {self.type!r}")
        return schema.model_validate(self.data)

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json", exclude_none=True))

    @classmethod
    def from_bytes(cls, raw: bytes) -> CloudEvent:
        # pydantic parses and validates the JSON in one pass: twice as fast as orjson.loads + model_validate.
        return cls.model_validate_json(raw)


# One envelope model per event type, its `data` typed: a consumer validates a record from its JSON bytes into
# the typed event in ONE pass (pydantic-core picks the model by `type`), instead of the envelope with `data`
# as a dict and then the dict again into the schema — 4× less work per event on the consumers' hot path.
_TYPED_ENVELOPES = tuple(
    create_model(f"{schema.__name__}Event", __base__=CloudEvent, type=(Literal[event_type], ...), data=(schema, ...))  # type: ignore[call-overload]
    for event_type, schema in DATA_SCHEMAS.items()
)
_TYPED_EVENT = TypeAdapter(Annotated[Union[_TYPED_ENVELOPES], Field(discriminator="type")])  # type: ignore[valid-type]


def typed_event_from_bytes(raw: bytes) -> CloudEvent:
    """A CloudEvent whose `data` is already its type's schema (the same object `parsed_data()` returns).

    Raises pydantic's ValidationError for anything `CloudEvent.from_bytes(raw).parsed_data()` would reject:
    not JSON, not a CloudEvent, an unknown type, or data that does not match the type's schema."""
    return _TYPED_EVENT.validate_json(raw)


def new_event(event_type: str, source: str, subject: str, data: EventData) -> CloudEvent:
    return CloudEvent(
        id=new_id(),
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
    "units.v1": (UNIT_UPSERTED, OFFICER_UPSERTED),
    "dossiers.v1": (DOSSIER_COMPLETED,),
    "ratings.v1": (RATING_ACCEPTED, RATING_FLAGGED),
    "assessments.v1": (ASSESSMENT_RECORDED,),
    "verifications.v1": (RATING_VERIFIED,),
    "scores.v1": (SCORE_CHANGED, SCORE_THRESHOLD_CROSSED, OFFICER_SCORE_CHANGED),
    "tickets.v1": (TICKET_OPENED, TICKET_UPDATED),
    "publications.v1": (PUBLICATION_DELIVERED,),
}
