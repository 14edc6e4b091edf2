"""Kafka topic names of the contract, and how each is configured."""

from __future__ import annotations

from dataclasses import dataclass, field

UNITS = "units.v1"
DOSSIERS = "dossiers.v1"
RATINGS = "ratings.v1"
ASSESSMENTS = "assessments.v1"
VERIFICATIONS = "verifications.v1"
SCORES = "scores.v1"
TICKETS = "tickets.v1"
PUBLICATIONS = "publications.v1"

ALL_BASE_TOPICS = (UNITS, DOSSIERS, RATINGS, ASSESSMENTS, VERIFICATIONS, SCORES, TICKETS, PUBLICATIONS)
DLQ_SUFFIX = ".dlq"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


def full_name(prefix: str, base: str) -> str:
    return f"{prefix}{base}"


def dlq_of(topic: str) -> str:
    return f"{topic}{DLQ_SUFFIX}"


def topic_specs(prefix: str, partitions: int) -> list[TopicSpec]:
    """Every topic of the contract with its `.dlq` twin; `units.v1` is compacted (latest state per unit)."""
    specs: list[TopicSpec] = []
    for base in ALL_BASE_TOPICS:
        name = full_name(prefix, base)
        config = {"cleanup.policy": "compact"} if base == UNITS else {}
        specs.append(TopicSpec(name, partitions, config))
        specs.append(TopicSpec(dlq_of(name), partitions, {}))
    return specs
