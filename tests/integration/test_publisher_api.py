"""Publisher's HTTP side on both databases, fed through the real broker: public rankings and open data, the
portal's changes feed, the page in both languages, privacy, operators' endpoints, rate limits, rebuilds."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from services.publisher import store
from services.publisher.app import build
from shared.auth import issue_jwt
from shared.db import create_engine_for
from shared.settings import Settings
from tests.support.infra import JWT_SECRET, Backend, wait_until
from tests.support.publisher_events import officer, officer_score, produce, score, ticket, unit

pytestmark = pytest.mark.integration
SECRET_OFFICER = "79.SNV.CB-SECRET-0042"
SECRET_NAME = "Nguyễn Văn Không Công Bố"


class Publisher:
    def __init__(self, client: TestClient, settings: Settings, bootstrap: str, prefix: str) -> None:
        self.client, self.settings, self.bootstrap, self.prefix = client, settings, bootstrap, prefix
        self.admin = issue_jwt(JWT_SECRET, "ops", "admin")

    def produce(self, *records: Any) -> None:
        produce(self.bootstrap, self.prefix, list(records))

    def get(self, path: str, token: str | None = None, **params: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.client.get(path, params=params, headers=headers)

    def ranking(self, **params: Any) -> dict[str, Any] | None:
        answer = self.get("/v1/public/rankings", **params)
        return answer.json() if answer.status_code == 200 else None

    def wait_for(self, unit_code: str, version: int, *, also: dict[str, int] | None = None, **params: Any) -> dict[str, Any]:
        """The ranking once `unit_code` (and every unit in `also`) shows at least the given version.

        Units sit on different partitions, so one unit's newest version says nothing about another's."""
        wanted = {unit_code: version, **(also or {})}

        def seen() -> dict[str, Any] | None:
            document = self.ranking(**params)
            versions = {i["unit_code"]: i["version"] for i in (document or {}).get("items", [])}
            return document if all(versions.get(u, 0) >= v for u, v in wanted.items()) else None

        return wait_until(seen, timeout=60, what=f"{wanted} in the public ranking")


def _settings(backend: Backend, bootstrap: str, prefix: str, data_dir: Path | None = None, **changes: Any) -> Settings:
    return Settings(
        database_url=backend.database_url, data_dir=data_dir or backend.data_dir, kafka_bootstrap=bootstrap,
        topic_prefix=prefix, jwt_secret=JWT_SECRET, **changes,
    )


@pytest.fixture
def publisher(backend: Backend, kafka_broker, topic_prefix: str) -> Iterator[Publisher]:  # type: ignore[no-untyped-def]
    # Snapshots here are the operator's: no period is recent enough for the automatic freeze to race the test.
    settings = _settings(backend, kafka_broker.bootstrap, topic_prefix, public_rate_limit="10000/minute",
                         snapshot_catch_up_days=1)
    with TestClient(build(settings)) as client:
        yield Publisher(client, settings, kafka_broker.bootstrap, topic_prefix)


def _registry() -> list[Any]:
    return [
        unit("79", "province", None, "Thành phố Hồ Chí Minh"),
        unit("79.SNV", name="Sở Nội vụ", lat=10.7798, lon=106.699),
        unit("79.STP", name="Sở Tư pháp", lat=10.7797, lon=106.6953),
        unit("79.SXD", name="Sở Xây dựng"),
        officer("79.SNV", SECRET_OFFICER, SECRET_NAME),
    ]


def test_rankings_as_json_and_csv_with_filters_privacy_and_nothing_about_officers(publisher: Publisher) -> None:
    publisher.produce(
        *_registry(),
        score("79.SNV", 1, 70.0), score("79.SNV", 2, 92.5, ratings=40), score("79.STP", 1, 81.25, ratings=12),
        score("79.SXD", 1, 100.0, ratings=3), score("79", 1, 88.0, ratings=400),
        officer_score("79.SNV", SECRET_OFFICER, 13.5791),
    )
    document = publisher.wait_for("79.SNV", 2, also={"79.STP": 1, "79.SXD": 1}, period="2026-11", level="department")
    assert document["edition"] == "live" and document["licence"]["name"] == "CC-BY-4.0"
    assert document["schema"].endswith("/v1/public/datapackage.json")
    rows = [(i["rank"], i["unit_code"], i["score"], i["band"], i["ratings"]) for i in document["items"]]
    assert rows == [
        (1, "79.SNV", 92.5, "satisfied", 40), (2, "79.STP", 81.25, "satisfied", 12),
        (None, "79.SXD", None, "insufficient_data", 3),  # 3 ratings: no figures, not ranked
    ]
    every_level = publisher.wait_for("79", 1, period="2026-11")["items"]
    assert [(i["rank"], i["unit_code"]) for i in every_level] == [(1, "79.SNV"), (2, "79"), (3, "79.STP"), (None, "79.SXD")]
    assert [i["unit_code"] for i in publisher.ranking(period="2026-11", parent="79", level="department")["items"]] == [
        "79.SNV", "79.STP", "79.SXD"]

    answer = publisher.get("/v1/public/rankings", period="2026-11", level="department", format="csv")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    assert 'rel="license"' in answer.headers["link"] and "attachment" in answer.headers["content-disposition"]
    table = list(csv.DictReader(io.StringIO(answer.text)))
    assert [(r["rank"], r["unit_code"], r["unit_name"], r["score"], r["band"]) for r in table] == [
        ("1", "79.SNV", "Sở Nội vụ", "92.5", "satisfied"), ("2", "79.STP", "Sở Tư pháp", "81.25", "satisfied"),
        ("", "79.SXD", "Sở Xây dựng", "", "insufficient_data")]
    package = publisher.get("/v1/public/datapackage.json").json()
    assert list(table[0]) == [f["name"] for f in package["resources"][0]["schema"]["fields"]]

    geojson = publisher.get("/v1/public/units.geojson", period="2026-11", profile="satisfied-share")
    assert geojson.headers["content-type"] == "application/geo+json"
    features = {f["id"]: f for f in geojson.json()["features"]}
    assert set(features) == {"79", "79.SNV", "79.STP"}  # 79.SXD has no coordinates: table only
    assert features["79.SNV"]["geometry"] == {"type": "Point", "coordinates": [106.699, 10.7798]}
    assert features["79"]["properties"]["coordinates_source"] == "provincial_seat"
    assert features["79.SNV"]["properties"]["score"] == 92.5

    outputs = [
        publisher.get("/v1/public/rankings", period="2026-11").text, answer.text, geojson.text,
        publisher.get("/v1/sync/results", limit=500).text, publisher.get("/", period="2026-11").text,
        publisher.get("/units/79.SNV").text, publisher.get("/v1/public/units/79.SNV/results").text,
    ]
    for text in outputs:
        assert SECRET_OFFICER not in text and SECRET_NAME not in text and "13.5791" not in text
    assert _database_text(publisher.settings).count(SECRET_OFFICER) == 0, "officer data stored by the publisher"


def _database_text(settings: Settings) -> str:
    async def dump() -> str:
        engine = create_engine_for(settings.database_url_for("publisher"), "publisher")
        try:
            async with engine.connect() as conn:
                texts = []
                for table in store.metadata.sorted_tables:
                    if table.name not in ("processed_events",):
                        texts.append(repr((await conn.execute(sa.select(table))).all()))
                return "\n".join(texts)
        finally:
            await engine.dispose()

    return asyncio.run(dump())


def test_bad_input_is_a_problem_naming_the_field(publisher: Publisher) -> None:
    cases = [
        ("/v1/public/rankings", {"period": "2026-13"}, "query.period"),
        ("/v1/public/rankings", {"level": "district"}, "query.level"),
        ("/v1/public/rankings", {"edition": "draft"}, "query.edition"),
        ("/v1/public/rankings", {"format": "xlsx"}, "query.format"),
        ("/v1/public/rankings", {"parent": "79 SNV"}, "query.parent"),
        ("/v1/sync/results", {"since": "abc"}, "query.since"),
        ("/v1/sync/results", {"limit": "0"}, "query.limit"),
        ("/", {"lang": "fr"}, "query.lang"),
    ]
    for path, params, field in cases:
        answer = publisher.get(path, **params)
        assert answer.status_code == 422, (path, params, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
        assert field in [e["field"] for e in answer.json()["errors"]]
    nothing = publisher.get("/v1/public/rankings", period="2026-11")
    assert nothing.status_code == 404 and nothing.headers["content-type"] == "application/problem+json"
    assert publisher.get("/units/does.not.exist").status_code == 404


def test_the_portal_feed_pages_through_every_change_once_in_commit_order(publisher: Publisher) -> None:
    publisher.produce(*_registry(), *[score("79.SNV", v, 60.0 + v) for v in range(1, 4)],
                      *[score(f"79.U{i:02d}", 1, 80.0) for i in range(7)])
    wait_until(lambda: len(publisher.get("/v1/sync/results", limit=500).json()["items"]) >= 8 and
               publisher.get("/v1/sync/results", limit=500).json()["items"][-1], what="the feed to fill")
    cursor, pages, seen = "0", 0, []
    while True:
        page = publisher.get("/v1/sync/results", since=cursor, limit=3).json()
        seen += page["items"]
        pages += 1
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    cursors = [int(item["cursor"]) for item in seen]
    assert cursors == list(range(1, len(seen) + 1)) and pages >= 3
    keys = [(i["unit_code"], i["period"], i["profile"], i["version"]) for i in seen]
    assert len(keys) == len(set(keys)), "a change appeared twice"
    newest = {}
    for item in seen:
        newest[item["unit_code"]] = item["version"]
    assert newest["79.SNV"] == 3 and all(item["edition"] == "live" for item in seen)
    again = publisher.get("/v1/sync/results", since=cursor).json()
    assert again == {"items": [], "next_cursor": cursor, "has_more": False}


def test_operators_see_and_retry_deliveries_and_publish_official_versions(publisher: Publisher) -> None:
    assert publisher.get("/v1/deliveries").status_code == 401
    kiosk = issue_jwt(JWT_SECRET, "k", "kiosk", "79.SNV")
    assert publisher.get("/v1/deliveries", kiosk).status_code == 403
    assert publisher.get("/v1/deliveries", publisher.admin).json() == {"items": [], "next_cursor": None}
    assert publisher.client.post("/v1/deliveries/999/retry", headers={"Authorization": f"Bearer {publisher.admin}"}).status_code == 404

    publisher.produce(*_registry(), score("79.SNV", 1, 85.0, period="2026-Q3"), score("79.STP", 1, 75.0, period="2026-Q3"))
    publisher.wait_for("79.STP", 1, also={"79.SNV": 1}, period="2026-Q3")
    auth = {"Authorization": f"Bearer {publisher.admin}"}
    post = publisher.client.post
    month = post("/v1/snapshots", json={"period": "2026-09", "profile": "satisfied-share", "reason": "monthly?"}, headers=auth)
    assert month.status_code == 422 and month.json()["errors"][0]["field"] == "body.period"
    still_open = post("/v1/snapshots", json={"period": "2099-Q1", "profile": "satisfied-share", "reason": "too early"}, headers=auth)
    assert still_open.status_code == 409
    assert post("/v1/snapshots", json={"period": "2026-Q3", "profile": "satisfied-share", "reason": "x" * 300},
                headers=auth).status_code == 422
    assert post("/v1/snapshots", json={"period": "2026-Q3", "profile": "satisfied-share", "reason": "close"}).status_code == 401
    frozen = post("/v1/snapshots", json={"period": "2026-Q3", "profile": "satisfied-share", "reason": "quarter close"}, headers=auth)
    assert frozen.status_code == 201 and frozen.json()["version"] == 1

    publisher.produce(score("79.STP", 2, 99.0, period="2026-Q3"))
    publisher.wait_for("79.STP", 2, period="2026-Q3")
    official = publisher.ranking(period="2026-Q3", edition="official")
    assert (official["edition"], official["snapshot_version"]) == ("official", 1)
    assert [(i["unit_code"], i["score"], i["rank"]) for i in official["items"]] == [("79.SNV", 85.0, 1), ("79.STP", 75.0, 2)]
    live = publisher.ranking(period="2026-Q3")
    assert [(i["unit_code"], i["score"]) for i in live["items"]] == [("79.STP", 99.0), ("79.SNV", 85.0)]
    page = publisher.get("/", period="2026-Q3", edition="official").text
    assert "Chính thức (chốt cuối kỳ)" in page and "phiên bản 1" in page
    listed = publisher.get("/v1/public/snapshots", period="2026-Q3").json()["items"]
    assert [(s["version"], s["reason"], s["unit_count"]) for s in listed] == [(1, "quarter close", 2)]
    assert publisher.get("/v1/public/rankings", period="2026-Q3", edition="official", version=2).status_code == 404


def test_the_page_in_vietnamese_and_english_and_a_units_remediation_record(publisher: Publisher) -> None:
    opened = datetime(2026, 11, 2, 2, tzinfo=timezone.utc)
    publisher.produce(
        *_registry(), score("79.SNV", 1, 92.5, ratings=40, period="2026-10"), score("79.SNV", 2, 88.0, ratings=30),
        ticket("t-1", "79.SNV", "open", opened, opened + timedelta(days=7), kind="vn.hailong.ticket.opened.v1",
               category="service_conditions"),
        ticket("t-1", "79.SNV", "closed", opened, opened + timedelta(days=7), resolved_at=opened + timedelta(days=4),
               closed_at=opened + timedelta(days=5), measures="Bố trí thêm quầy tiếp nhận buổi sáng",
               category="service_conditions"),
        ticket("t-2", "79.SNV", "closed", opened, opened + timedelta(days=7), breached=True,
               resolved_at=opened + timedelta(days=9), closed_at=opened + timedelta(days=9)),
        ticket("t-3", "79.SNV", "open", opened, opened + timedelta(days=21), kind="vn.hailong.ticket.opened.v1"),
    )
    publisher.wait_for("79.SNV", 2, period="2026-11")
    wait_until(lambda: "Bố trí thêm quầy" in publisher.get("/units/79.SNV").text, what="the ticket projection")

    page = publisher.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    html = page.text
    assert '<html lang="vi">' in html and 'data-unit="79.SNV"' in html and "Bảng xếp hạng" in html
    assert 'href="/?period=2026-11&amp;profile=satisfied-share&amp;level=department&amp;edition=live&amp;zoom=auto&amp;lang=en"' in html
    english = publisher.get("/", lang="en").text
    assert '<html lang="en">' in english and "Ranking" in english and "Satisfied" in english

    unit_page = publisher.get("/units/79.SNV").text
    assert "Khảo sát hài lòng" in unit_page and "Sở Nội vụ" in unit_page
    stats = {key: _stat(unit_page, key) for key in ("opened", "closed", "open", "on_time")}
    assert stats == {"opened": "3", "closed": "2", "open": "1", "on_time": "50,0%"}
    assert "rating-that-must-stay-private" not in unit_page
    english_unit = publisher.get("/units/79.SNV", lang="en").text
    assert "Satisfaction survey" in english_unit and "50.0%" in english_unit and "Month by month" in english_unit


def _stat(html: str, key: str) -> str:
    marker = f'data-stat="{key}">'
    start = html.index(marker) + len(marker)
    return html[start:html.index("<", start)]


def test_public_endpoints_are_rate_limited_per_caller(backend: Backend, kafka_broker, topic_prefix: str) -> None:  # type: ignore[no-untyped-def]
    settings = _settings(backend, kafka_broker.bootstrap, topic_prefix, public_rate_limit="3/minute")
    with TestClient(build(settings)) as client:
        answers = [client.get("/v1/sync/results") for _ in range(3)]
        assert all(a.status_code == 200 for a in answers)
        over = client.get("/")
        assert over.status_code == 429 and int(over.headers["retry-after"]) >= 1
        assert over.headers["content-type"] == "application/problem+json"
        assert client.get("/healthz").status_code == 200  # operations endpoints are not public pages


def test_rebuilt_from_the_topics_the_public_figures_are_the_same(
    request: pytest.FixtureRequest, backend: Backend, kafka_broker, topic_prefix: str, tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    records = [*_registry(), *[unit(f"79.U{i}", lat=10.7 + i / 100, lon=106.6) for i in range(6)],
               *[score(f"79.U{i}", v, 50.0 + 7 * i + v, ratings=4 + i) for i in range(6) for v in (1, 2)]]
    first_settings = _settings(backend, kafka_broker.bootstrap, topic_prefix)
    with TestClient(build(first_settings)) as client:
        first = Publisher(client, first_settings, kafka_broker.bootstrap, topic_prefix)
        first.produce(*records)
        before = {u: first.wait_for(f"79.U{u}", 2, period="2026-11", level="department") for u in range(6)}[5]
    fresh = Backend(backend.name, None, tmp_path / "rebuilt")
    if backend.name == "postgresql":
        fresh.database_url = request.getfixturevalue("postgres_server").create_database(f"t_{uuid.uuid4().hex[:12]}")
    second_settings = _settings(fresh, kafka_broker.bootstrap, topic_prefix, data_dir=fresh.data_dir)
    with TestClient(build(second_settings)) as client:
        second = Publisher(client, second_settings, kafka_broker.bootstrap, topic_prefix)
        after = {u: second.wait_for(f"79.U{u}", 2, period="2026-11", level="department") for u in range(6)}[5]
    strip = lambda d: json.dumps({k: v for k, v in d.items() if k != "generated_at"}, sort_keys=True)  # noqa: E731
    assert strip(after) == strip(before)
