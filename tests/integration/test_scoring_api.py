"""Scoring's HTTP API in process (TestClient) on both databases: rankings, exports, scorecards, trends,
officers, profiles, and bad input answered with problem+json naming the field."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from services.scoring.app import build
from services.scoring.domain.profiles import ProfileBook
from services.scoring.scorer import Scorer
from shared.auth import issue_jwt
from shared.settings import Settings
from tests.support import scoring_events as se
from tests.support.infra import JWT_SECRET, Backend, wait_until

pytestmark = pytest.mark.integration
PROBLEM = "application/problem+json"


def _ratings(unit: str, satisfied: int, total: int, completed: str) -> list:
    return [
        se.rating(f"{unit}-{completed[:7]}-{i}", unit, "satisfied" if i < satisfied else "dissatisfied",
                  completed=completed, attitude="good", officers=[f"{unit}.CB1"])
        for i in range(total)
    ]


async def _seed(backend: Backend) -> None:
    engine = await se.scoring_engine(backend)
    try:
        await se.apply(engine, [
            se.unit("79", level="province", name="Thành phố Hồ Chí Minh"),
            *(se.unit(f"79.P{i}", "79", name=f"Phường {i}") for i in range(1, 5)),
            se.unit("74", level="province", name="Tỉnh Bình Dương"), se.unit("74.P9", "74"),
            se.officer("79.P1.CB1", "79.P1"),
        ])
        await se.apply(engine, [
            *_ratings("79.P2", 4, 4, "2026-10-15 10:00"), *_ratings("79.P1", 2, 4, "2026-10-15 10:00"),
            *_ratings("79.P1", 4, 4, "2026-11-18 10:00"), *_ratings("79.P2", 3, 4, "2026-11-18 10:00"),
            *_ratings("79.P3", 3, 4, "2026-11-18 10:00"), *_ratings("79.P4", 2, 2, "2026-11-18 10:00"),
            *_ratings("74.P9", 1, 4, "2026-11-18 10:00"),
            se.dossier("79.P1-D", "79.P1"),
            se.assessment("79.P1", "2026-11", feedback_handling=17.5, public_listing=True),
        ])
        await Scorer(engine, ProfileBook.build({"hcmc-2024": {"a_grace_working_days": 5}}, minimum_count=3), "t.").publish_once()
    finally:
        await engine.dispose()


@pytest.fixture
def client(backend: Backend, kafka_broker, topic_prefix: str) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    import asyncio

    asyncio.run(_seed(backend))
    settings = Settings(
        database_url=backend.database_url, data_dir=backend.data_dir, kafka_bootstrap=kafka_broker.bootstrap,
        topic_prefix=topic_prefix, jwt_secret=JWT_SECRET, scoring_minimum_count=3,
        scoring_profile_parameters={"hcmc-2024": {"a_grace_working_days": 5}},
    )
    with TestClient(build(settings)) as test_client:
        yield test_client


def _problem(response, field: str) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    assert field in [e["field"] for e in response.json()["errors"]], response.json()


def test_rankings_share_ranks_show_rank_change_and_keep_thin_figures_apart(client: TestClient) -> None:
    body = client.get("/v1/rankings", params={"period": "2026-11", "level": "ward", "parent": "79"}).json()
    assert (body["period"], body["profile"], body["profile_version"]) == ("2026-11", "satisfied-share", "2017.1")
    ranked = [(i["rank"], i["unit_code"], i["score"], i["rank_change"]) for i in body["items"]]
    # 79.P1 4/4 (was 2nd in October), 79.P2 3/4 (was 1st), 79.P3 3/4 (not ranked in October): a shared 2nd place.
    assert ranked == [(1, "79.P1", 100.0, 1), (2, "79.P2", 75.0, -1), (2, "79.P3", 75.0, None)]
    assert [i["unit_code"] for i in body["insufficient_data"]] == ["79.P4"]  # 2 ratings, minimum 3
    first = body["items"][0]
    assert first["unit_name"] == "Phường 1" and first["max_score"] == 100 and first["ratings"] == 4
    assert first["components"]["wilson_95"][0] < 1.0 and first["band"] == "satisfied"

    provinces = client.get("/v1/rankings", params={"period": "2026-Q4", "level": "province"}).json()
    assert [(i["unit_code"], i["ratings"]) for i in provinces["items"]] == [("79", 22), ("74", 4)]  # summed counts

    hcmc = client.get("/v1/rankings", params={"period": "2026-11", "profile": "hcmc-2024", "parent": "79"}).json()
    assert [i["unit_code"] for i in hcmc["items"]] == []  # 79.P1 has D and E but only one dossier
    assert [i["unit_code"] for i in hcmc["insufficient_data"]][:1] == ["79.P1"]


def _without_time(body: dict) -> dict:  # type: ignore[type-arg]
    return {k: v for k, v in body.items() if k != "generated_at"}


def test_rankings_are_rendered_when_figures_change_and_served_as_rendered(client: TestClient, backend: Backend) -> None:
    import asyncio

    for params in ({"period": "2026-11", "level": "ward"}, {"period": "2026-Q4", "level": "province"}, {"period": "2026-11"}):
        rendered = wait_until(
            lambda: (r := client.get("/v1/rankings", params=params)).headers.get("content-encoding") == "gzip" and r,
            timeout=30, what=f"the rendered ranking {params}",
        )
        computed = client.get("/v1/rankings", params=params, headers={"Cache-Control": "no-cache"})
        assert "content-encoding" not in computed.headers  # computed afresh, as asked
        assert _without_time(rendered.json()) == _without_time(computed.json())
        plain = client.get("/v1/rankings", params=params, headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers and plain.json() == rendered.json()

    async def more_ratings() -> None:  # 79.P4 reaches the minimum count: ranked, level with 79.P1
        engine = await se.scoring_engine(backend)
        try:
            await se.apply(engine, _ratings("79.P4", 3, 3, "2026-11-18 10:00"))
            await Scorer(engine, ProfileBook.build({"hcmc-2024": {"a_grace_working_days": 5}}, minimum_count=3), "t.").publish_once()
        finally:
            await engine.dispose()

    asyncio.run(more_ratings())
    ward = {"period": "2026-11", "level": "ward"}

    def ranked_with_79p4() -> list | None:  # type: ignore[type-arg]
        items = client.get("/v1/rankings", params=ward).json()["items"]
        return items if "79.P4" in [i["unit_code"] for i in items] else None

    items = wait_until(ranked_with_79p4, timeout=30, what="the ranking rendered again after the new figures")
    assert [(i["rank"], i["unit_code"]) for i in items][:2] == [(1, "79.P1"), (1, "79.P4")]  # both 100 %
    assert client.get("/v1/rankings", params=ward, headers={"Cache-Control": "no-cache"}).json()["items"] == items


def test_rankings_export_as_csv_and_xlsx(client: TestClient) -> None:
    answer = client.get("/v1/rankings", params={"period": "2026-11", "parent": "79", "format": "csv"})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    assert 'filename="rankings-satisfied-share-2026-11.csv"' in answer.headers["content-disposition"]
    text = answer.content.decode("utf-8")
    assert text.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    assert [(r["list"], r["rank"], r["unit_code"], r["unit_name"]) for r in rows] == [
        ("final", "1", "79.P1", "Phường 1"), ("final", "2", "79.P2", "Phường 2"), ("final", "2", "79.P3", "Phường 3"),
        ("insufficient_data", "", "79.P4", "Phường 4"),
    ]
    answer = client.get("/v1/rankings", params={"period": "2026-11", "parent": "79", "format": "xlsx"})
    assert answer.status_code == 200
    sheet = load_workbook(io.BytesIO(answer.content)).active
    values = list(sheet.iter_rows(values_only=True))
    assert values[0][:5] == ("list", "rank", "unit_code", "unit_name", "score")
    assert values[1][:5] == ("final", 1, "79.P1", "Phường 1", 100)


def test_bad_queries_are_problems_naming_the_field(client: TestClient) -> None:
    _problem(client.get("/v1/rankings", params={"period": "2026-13"}), "query.period")
    _problem(client.get("/v1/rankings"), "query.period")
    _problem(client.get("/v1/rankings", params={"period": "2026-11", "profile": "nonsense"}), "query.profile")
    _problem(client.get("/v1/rankings", params={"period": "2026-11", "level": "district"}), "query.level")
    _problem(client.get("/v1/rankings", params={"period": "2026-11", "format": "pdf"}), "query.format")
    _problem(client.get("/v1/rankings", params={"period": "2026-11", "parent": "no spaces"}), "query.parent")
    _problem(client.get("/v1/units/79.P1/trend", params={"granularity": "month", "from": "2026-Q1", "to": "2026-12"}), "query.from")
    _problem(client.get("/v1/units/79.P1/trend", params={"granularity": "month", "from": "2026-12", "to": "2026-01"}), "query.from")
    missing = client.get("/v1/units/79.P9/scores", params={"period": "2026-11"})
    assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM


def test_a_scorecard_shows_every_component_and_the_parameters_in_force(client: TestClient) -> None:
    card = client.get("/v1/units/79.P1/scores", params={"period": "2026-11", "profile": "hcmc-2024"}).json()
    assert set(card["components"]) == {"A", "B", "C", "D", "E", "K"}
    assert card["components"]["A"]["grace_working_days"] == 5  # from HAILONG_SCORING_PROFILE_PARAMETERS
    assert card["components"]["D"]["value"] == 17.5 and card["dossiers"] == 1 and card["ratings"] == 4
    profiles = {p["profile"]: p for p in client.get("/v1/profiles").json()["items"]}
    assert profiles["hcmc-2024"]["versions"][0]["parameters"]["a_grace_working_days"] == 5
    assert profiles["satisfied-share"]["versions"][0]["parameters"]["minimum_count"] == 3
    assert len(profiles) == 5


def test_a_trend_lists_every_period_with_nulls_where_there_is_nothing(client: TestClient) -> None:
    trend = client.get("/v1/units/79.P1/trend", params={"granularity": "month", "from": "2026-09", "to": "2026-12"}).json()
    assert [(p["period"], p["score"]) for p in trend["items"]] == [("2026-09", None), ("2026-10", 50.0), ("2026-11", 100.0), ("2026-12", None)]
    quarters = client.get("/v1/units/79.P1/trend", params={"granularity": "quarter", "from": "2026-Q3", "to": "2026-Q4"}).json()
    assert [(p["period"], p.get("ratings")) for p in quarters["items"]] == [("2026-Q3", None), ("2026-Q4", 8)]


def test_officer_figures_are_for_their_unit_heads_only(client: TestClient) -> None:
    path, period = "/v1/officers/79.P1.CB1/scores", {"period": "2026"}
    assert client.get(path, params=period).status_code == 401

    def as_(role: str, scope: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {issue_jwt(JWT_SECRET, 'someone', role, scope)}"}

    assert client.get(path, params=period, headers=as_("unit_head", "79.P2")).status_code == 403
    assert client.get(path, params=period, headers=as_("unit_head", None)).status_code == 403
    assert client.get(path, params=period, headers=as_("kiosk", None)).status_code == 403
    for scope in ("79.P1", "79"):  # the ward's head, or the city's
        answer = client.get(path, params=period, headers=as_("unit_head", scope))
        assert answer.status_code == 200, answer.text
    items = {i["profile"]: i for i in answer.json()["items"]}
    assert items["satisfied-share"]["ratings"] == 8 and items["satisfied-share"]["components"]["satisfied"] == 6
    assert client.get("/v1/officers/nobody/scores", params=period, headers=as_("admin", None)).status_code == 404


def test_public_reads_are_rate_limited_per_client(backend: Backend, kafka_broker, topic_prefix: str) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(
        database_url=backend.database_url, data_dir=backend.data_dir, kafka_bootstrap=kafka_broker.bootstrap,
        topic_prefix=topic_prefix, jwt_secret=JWT_SECRET, scoring_public_rate_limit="3/minute",
    )
    with TestClient(build(settings)) as client:
        answers = [client.get("/v1/profiles") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[-1].headers["content-type"] == PROBLEM and int(answers[-1].headers["retry-after"]) >= 1
