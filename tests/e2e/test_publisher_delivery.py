"""The publisher as a real process pushing to a real HTTP map that fails: 503 with Retry-After, stalls past the
timeout, 400 for one unit, a signature it no longer accepts — and the publisher killed -9 mid-stream.

Every unit and period ends with its newest version shown on the map; no version was ever sent with two different
bodies; nothing was lost across the kill and restarts; the portal's changes feed, read with one cursor across
all of it, has no gaps and no repeats."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.auth import issue_jwt
from tests.support.infra import JWT_SECRET, MAP_SECRET, MAP_TOKEN, Backend, ServiceProcess, service_env, wait_until
from tests.support.publisher_events import produce, score, unit
from tests.support.publisher_targets import ScriptedMap

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
UNITS = [f"79.T{i:02d}" for i in range(8)]
REJECTED = "79.T03"
ROTATED_SECRET = "the-map-rotated-its-secret"


class FeedReader:
    """The national portal: polls /v1/sync/results with its cursor, whatever happens to the publisher."""

    def __init__(self) -> None:
        self.cursor = "0"
        self.items: list[dict[str, Any]] = []

    def poll(self, publisher: ServiceProcess) -> int:
        try:
            page = httpx.get(f"{publisher.url}/v1/sync/results", params={"since": self.cursor, "limit": 7}, timeout=5).json()
        except (httpx.HTTPError, ValueError):
            return len(self.items)  # down or starting: the cursor waits
        self.items += page["items"]
        self.cursor = page["next_cursor"]
        return len(self.items)


def _path(code: str) -> str:
    return f"/units/{code}/satisfaction/2026-11"


def _deliveries(publisher: ServiceProcess, admin: str, **params: Any) -> list[dict[str, Any]]:
    try:
        answer = publisher.get("/v1/deliveries", admin, target="map", **params)
    except httpx.HTTPError:
        return []
    return answer.json()["items"] if answer.status_code == 200 else []


def _retry(publisher: ServiceProcess, admin: str, delivery_id: int) -> None:
    answer = httpx.post(f"{publisher.url}/v1/deliveries/{delivery_id}/retry", headers={"Authorization": f"Bearer {admin}"}, timeout=10)
    assert answer.status_code == 202, answer.text


def test_every_result_reaches_a_failing_map_once_per_version_across_kill_9_and_the_feed_stays_whole(
    kafka_broker, topic_prefix: str, backend: Backend, tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    institution_map = ScriptedMap(MAP_SECRET, MAP_TOKEN, fail_first=4, stall_every=9, stall_seconds=2.5,
                                  reject_units={REJECTED})
    env = service_env(
        backend, kafka_broker.bootstrap, topic_prefix,
        HAILONG_MAP_URL=institution_map.url, HAILONG_MAP_TOKEN=MAP_TOKEN, HAILONG_MAP_SIGNING_SECRET=MAP_SECRET,
        HAILONG_MAP_TIMEOUT_SECONDS="1", HAILONG_MAP_MAX_BACKOFF_SECONDS="2", HAILONG_MAP_CONCURRENCY="3", HAILONG_MAP_PROFILES="satisfied-share",
        HAILONG_DELIVERY_BREAKER_FAILURES="4", HAILONG_DELIVERY_BREAKER_COOLDOWN_SECONDS="1",
        HAILONG_CONSUMER_BATCH_SIZE="2",
    )
    admin = issue_jwt(JWT_SECRET, "ops", "operator")
    publisher = ServiceProcess("publisher", env, tmp_path / "logs")
    feed = FeedReader()
    newest = {code: 0 for code in UNITS}

    def versions(first: int, last: int) -> list[Any]:
        records = [score(code, v, 60.0 + v, ratings=20 + v) for v in range(first, last + 1) for code in UNITS]
        for code in UNITS:
            newest[code] = last
        return records

    try:
        produce(kafka_broker.bootstrap, topic_prefix, [unit(code) for code in UNITS] + versions(1, 15))
        publisher.start()
        progress = wait_until(lambda: feed.poll(publisher), timeout=60, interval=0.02, what="the first feed entries")
        publisher.kill()  # kill -9 while it consumes, publishes and pushes
        assert progress < 8 * 15, "the publisher finished before it could be killed mid-stream"
        produce(kafka_broker.bootstrap, topic_prefix, versions(16, 20))  # while it is down
        publisher.start()

        def newest_shown() -> bool:
            feed.poll(publisher)
            return all(institution_map.version_shown(_path(code)) == newest[code] for code in UNITS if code != REJECTED)

        wait_until(newest_shown, timeout=120, interval=0.3, what="every unit's newest version on the map")

        # The unit the map rejected is dead-lettered, shown to operators, and sent again on request.
        (dead,) = wait_until(lambda: _deliveries(publisher, admin, status="dead", unit_code=REJECTED), timeout=60,
                             what="the rejected unit in the dead letters")
        assert dead["last_error"].startswith("HTTP 400") and dead["version"] == newest[REJECTED]
        institution_map.reject_units.clear()
        _retry(publisher, admin, dead["id"])
        wait_until(lambda: institution_map.version_shown(_path(REJECTED)) == newest[REJECTED], timeout=60,
                   what="the rejected unit delivered after the retry")
        # A stalled push may be shown by the map yet still be retried by the publisher: let every push settle.
        wait_until(lambda: not _pending(publisher, admin) and _deliveries(publisher, admin, status="delivered", unit_code=REJECTED),
                   timeout=60, what="every push to settle")

        # The map rotates its signing secret: pushes are refused (401, dead) until the publisher has it too.
        institution_map.expected_secret = ROTATED_SECRET
        produce(kafka_broker.bootstrap, topic_prefix, [score(UNITS[0], 21, 99.0, ratings=80)])
        newest[UNITS[0]] = 21
        (refused,) = wait_until(lambda: _deliveries(publisher, admin, status="dead", unit_code=UNITS[0]), timeout=60,
                                what="the push refused for its signature")
        assert refused["last_error"].startswith("HTTP 401") and refused["version"] == 21
        publisher.stop()
        publisher.env["HAILONG_MAP_SIGNING_SECRET"] = ROTATED_SECRET
        publisher.start()
        _retry(publisher, admin, refused["id"])
        wait_until(lambda: institution_map.version_shown(_path(UNITS[0])) == 21, timeout=60, what="v21 under the new secret")
        wait_until(lambda: feed.poll(publisher) and feed.items[-1]["version"] == 21 and not _pending(publisher, admin),
                   timeout=60, what="the feed to reach v21 and no push to be pending")

        calls = institution_map.snapshot()
        _assert_each_version_was_sent_with_one_body(calls)
        assert any(c.answered == 503 for c in calls) and any(c.stalled for c in calls)
        assert all(c.headers["authorization"] == f"Bearer {MAP_TOKEN}" for c in calls)
        assert all(c.signature_ok for c in calls if 200 <= c.answered < 300)
        for code in UNITS:
            shown = json.loads(institution_map.applied[_path(code)][1])
            assert (shown["unit_code"], shown["period"], shown["version"]) == (code, "2026-11", newest[code])
            assert shown["score"] == (99.0 if code == UNITS[0] else 60.0 + newest[code])

        _assert_feed_has_no_gaps_or_repeats(feed.items, newest)
        _assert_the_stream_replays_from_last_event_id(publisher, int(feed.items[-1]["cursor"]))
        detail = publisher.get(f"/v1/deliveries/{dead['id']}", admin).json()
        codes = [a["status_code"] for a in detail["attempt_log"]]  # newest first
        assert codes[0] == 200 and 400 in codes and detail["status"] == "delivered"
        metrics = publisher.get("/metrics").text  # this process's counters: it was restarted after the faults
        assert 'hailong_delivery_attempts_total{outcome="delivered",target="map"}' in metrics
        assert 'hailong_delivery_circuit{hailong_delivery_circuit="closed",target="map"} 1.0' in metrics
        assert "hailong_delivery_seconds_bucket" in metrics and "hailong_deliveries{" in metrics
    finally:
        publisher.stop()
        institution_map.close()


def _pending(publisher: ServiceProcess, admin: str) -> list[dict[str, Any]]:
    return _deliveries(publisher, admin, status="pending") + _deliveries(publisher, admin, status="retry")


def _assert_each_version_was_sent_with_one_body(calls: list[Any]) -> None:
    bodies: dict[tuple[str, str], set[bytes]] = defaultdict(set)
    keys_by_version: dict[tuple[str, int], set[str]] = defaultdict(set)
    for call in calls:
        document = call.document
        bodies[(call.path, call.headers["idempotency-key"])].add(call.body)
        keys_by_version[(call.path, document["version"])].add(call.headers["idempotency-key"])
        assert call.headers["idempotency-key"].endswith(f":v{document['version']}")
    assert all(len(variants) == 1 for variants in bodies.values()), "a version was sent with different content"
    assert all(len(keys) == 1 for keys in keys_by_version.values())
    assert any(len([c for c in calls if (c.path, c.headers["idempotency-key"]) == key]) > 1 for key in bodies), \
        "no version was ever resent: the faults did not happen"


def _assert_feed_has_no_gaps_or_repeats(items: list[dict[str, Any]], newest: dict[str, int]) -> None:
    cursors = [int(item["cursor"]) for item in items]
    assert cursors == list(range(1, len(items) + 1)), "the feed has a gap or a repeat across the restarts"
    keys = [(i["unit_code"], i["period"], i["profile"], i["version"]) for i in items]
    assert len(keys) == len(set(keys))
    last_seen: dict[str, int] = {}
    for item in items:
        assert item["version"] > last_seen.get(item["unit_code"], 0), "versions of a result went backwards in the feed"
        last_seen[item["unit_code"]] = item["version"]
    assert last_seen == newest


def _assert_the_stream_replays_from_last_event_id(publisher: ServiceProcess, head: int) -> None:
    ids: list[int] = []
    started = time.monotonic()
    with httpx.stream("GET", f"{publisher.url}/v1/public/stream", headers={"Last-Event-ID": str(head - 3)}, timeout=10) as answer:
        assert answer.headers["content-type"].startswith("text/event-stream")
        for line in answer.iter_lines():
            if line.startswith("id:"):
                ids.append(int(line[3:].strip()))
            if len(ids) == 3 or time.monotonic() - started > 10:
                break
    assert ids == [head - 2, head - 1, head]
