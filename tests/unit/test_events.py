"""CloudEvents envelope: structured JSON mode, typed data, unknown types refused."""

from datetime import datetime, timezone

import pytest
from pydantic import ValidationError

from shared import events


def _accepted() -> events.RatingAccepted:
    moment = datetime(2026, 11, 18, 3, 2, tzinfo=timezone.utc)
    return events.RatingAccepted(
        rating_id="r1", dossier_code="D1", unit_code="79.SNV", channel="kiosk", submitted_at=moment,
        dossier_completed_at=moment, overall="satisfied",
    )


def test_an_event_round_trips_through_bytes_with_the_envelope_fields() -> None:
    event = events.new_event(events.RATING_ACCEPTED, "/hailong/intake", "79.SNV", _accepted())
    decoded = events.CloudEvent.from_bytes(event.to_bytes())
    assert decoded.specversion == "1.0" and decoded.datacontenttype == "application/json"
    assert decoded.id == event.id and decoded.subject == "79.SNV"
    assert decoded.parsed_data() == _accepted()


def test_unknown_types_and_bad_data_are_errors() -> None:
    event = events.new_event(events.RATING_ACCEPTED, "/x", "u", _accepted())
    with pytest.raises(ValueError):
        event.model_copy(update={"type": "vn.hailong.nonsense.v1"}).parsed_data()
    with pytest.raises(ValidationError):
        event.model_copy(update={"data": {**event.data, "overall": "ecstatic"}}).parsed_data()


def test_traceparent_continues_a_trace() -> None:
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    child = events.new_traceparent(parent)
    assert child.split("-")[1] == "0af7651916cd43dd8448eb211c80319c"
    assert child != parent
    assert len(events.new_traceparent("garbage").split("-")[1]) == 32


def test_a_field_added_by_a_newer_producer_is_ignored_not_poison() -> None:
    event = events.new_event(events.RATING_ACCEPTED, "/hailong/intake", "79.SNV", _accepted())
    newer = event.model_copy(update={"data": {**event.data, "added_in_a_later_release": {"x": 1}}})
    assert events.CloudEvent.from_bytes(newer.to_bytes()).parsed_data() == _accepted()
