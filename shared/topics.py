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


# What citizens and units said: the record a consumer is rebuilt from (`hailong scoring rebuild
# --from-topics`), so it is kept for good; derived topics (scores, tickets, publications) keep the
# broker's default retention.
SOURCE_TOPICS = (DOSSIERS, RATINGS, ASSESSMENTS, VERIFICATIONS)


def topic_config(base: str) -> dict[str, str]:
    if base == UNITS:
        return {"cleanup.policy": "compact"}  # the latest state of each unit and officer
    if base in SOURCE_TOPICS:
        return {"retention.ms": "-1"}
    return {}


def topic_specs(prefix: str, partitions: int) -> list[TopicSpec]:
    """Every topic of the contract with its `.dlq` twin, configured by `topic_config`."""
    specs: list[TopicSpec] = []
    for base in ALL_BASE_TOPICS:
        name = full_name(prefix, base)
        config = topic_config(base)
        specs.append(TopicSpec(name, partitions, config))
        specs.append(TopicSpec(dlq_of(name), partitions, {}))
    return specs
