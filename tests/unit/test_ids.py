"""Ids of ratings, events and tickets: unique, RFC 9562 version 7, and in the order they were made."""

from __future__ import annotations

import time
import uuid

from shared.ids import new_id, new_ids


def test_ids_are_distinct_version_7_uuids() -> None:
    ids = list(new_ids(1000))
    assert len(set(ids)) == 1000
    assert all(uuid.UUID(value).version == 7 and uuid.UUID(value).variant == uuid.RFC_4122 for value in ids)
    assert list(new_ids(0)) == []


def test_ids_sort_in_the_order_they_were_made() -> None:
    # What keeps the indexes keyed by them append-mostly: later ids sort after earlier ones, as text too.
    made = [new_id() for _ in range(500)] + list(new_ids(500))
    time.sleep(0.002)
    made.append(new_id())
    assert made == sorted(made)


def test_an_id_carries_the_millisecond_it_was_made() -> None:
    before = int(time.time() * 1000)
    made = uuid.UUID(new_id())
    after = int(time.time() * 1000)
    assert before <= made.int >> 80 <= after
