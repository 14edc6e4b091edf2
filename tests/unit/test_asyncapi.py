"""docs/asyncapi.json is the document generated from the event schemas, not a stale copy."""

import json
from pathlib import Path

from shared.asyncapi import asyncapi_document
from shared.events import DATA_SCHEMAS, EVENTS_BY_TOPIC
from shared.topics import ALL_BASE_TOPICS

DOC = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.json"


def test_the_committed_document_matches_the_schemas() -> None:
    assert json.loads(DOC.read_text(encoding="utf-8")) == asyncapi_document(), "run: .venv/bin/hailong asyncapi"


def test_every_topic_and_event_type_is_documented() -> None:
    document = asyncapi_document()
    assert set(EVENTS_BY_TOPIC) == set(ALL_BASE_TOPICS)
    titles = {message["title"] for message in document["components"]["messages"].values()}
    assert titles == set(DATA_SCHEMAS)
    assert document["asyncapi"] == "3.0.0"
