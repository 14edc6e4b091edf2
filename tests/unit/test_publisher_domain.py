"""Publisher's pure rules: retries and breaker, what the public may see, when official results freeze, transparency."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from services.publisher.domain.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from services.publisher.domain.delivery import (
    DEAD, DELIVERED, RETRY, Backoff, idempotency_key, next_delay, outcome_of, retry_after_seconds, signature, target_path,
)
from services.publisher.domain.geo import Mercator, ViewBox, dot_radius, fit_view
from services.publisher.domain.official import due_for_snapshot, has_closed, is_official_period, period_end
from services.publisher.domain.opendata import RANKING_COLUMNS, data_package, rankings_csv
from services.publisher.domain.publication import (
    INSUFFICIENT, UnitInfo, band_tone, competition_ranks, profile_filter, public_result, pushes_profile, rank_results,
)
from services.publisher.domain.transparency import TicketFacts, summarise
from services.publisher.domain.trend import trend_chart
from shared.periods import VIETNAM, parse_period

UTC = timezone.utc


# --- pushes: the contract's retry rules ---------------------------------------------------------------------

@pytest.mark.parametrize(
    ("status", "outcome"),
    [(200, DELIVERED), (201, DELIVERED), (204, DELIVERED), (408, RETRY), (429, RETRY), (500, RETRY), (502, RETRY),
     (503, RETRY), (None, RETRY), (400, DEAD), (401, DEAD), (403, DEAD), (404, DEAD), (409, DEAD), (422, DEAD),
     (301, DEAD)],
)
def test_2xx_is_delivered_408_429_5xx_and_timeouts_retry_other_answers_are_dead(status: int | None, outcome: str) -> None:
    assert outcome_of(status) == outcome


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2026, 11, 25, 8, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("7", now) == 7.0
    assert retry_after_seconds("Wed, 25 Nov 2026 08:00:30 GMT", now) == 30.0
    assert retry_after_seconds("Wed, 25 Nov 2026 07:59:00 GMT", now) == 0.0  # in the past: now
    assert retry_after_seconds("soon", now) is None
    assert retry_after_seconds(None, now) is None


def test_backoff_grows_exponentially_with_jitter_is_capped_and_never_sooner_than_retry_after() -> None:
    policy = Backoff(base_seconds=0.5, max_seconds=8.0)
    rng = random.Random(1)
    for attempts, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (9, 8.0)]:
        delays = [next_delay(attempts, None, policy, rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays), (attempts, min(delays), max(delays))
        assert max(delays) - min(delays) > ceiling / 4  # jittered, not a fixed step
    assert next_delay(1, 30.0, policy, rng) == 30.0  # the server's Retry-After wins over a shorter backoff


def test_signature_is_hmac_sha256_of_the_body_rfc_4231_vector() -> None:
    # RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
    assert signature("Jefe", b"what do ya want for nothing?") == (
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )


def test_idempotency_key_names_the_result_and_version_and_the_path_follows_the_contract() -> None:
    assert idempotency_key("79.SNV", "2026-11", "hcmc-2024", "live", 7) == "79.SNV:2026-11:hcmc-2024:v7"
    assert idempotency_key("79.SNV", "2026-Q3", "hcmc-2024", "official", 2) == "79.SNV:2026-Q3:hcmc-2024:official:v2"
    assert target_path("79.SNV", "2026-11") == "/units/79.SNV/satisfaction/2026-11"


def test_the_breaker_opens_after_failures_in_a_row_probes_once_and_backs_off_further_when_the_probe_fails() -> None:
    breaker = CircuitBreaker(failure_threshold=3, cooldown_seconds=10, max_cooldown_seconds=25)
    for _ in range(2):
        assert breaker.acquire(0)
        breaker.record_failure(0)
    breaker.record_success()  # a success resets the count: only failures in a row open it
    for _ in range(3):
        assert breaker.acquire(1)
        breaker.record_failure(1)
    assert breaker.state == OPEN and not breaker.acquire(5) and breaker.seconds_until_probe(5) == 6
    assert breaker.batch_size(8) == 1
    assert breaker.acquire(11) and breaker.state == HALF_OPEN  # the one probe
    assert not breaker.acquire(11)  # nobody else while it is out
    breaker.record_failure(12)
    assert breaker.state == OPEN and breaker.seconds_until_probe(12) == 20  # cool-down doubled
    assert breaker.acquire(32)
    breaker.record_failure(32)
    assert breaker.seconds_until_probe(32) == 25  # capped
    assert breaker.acquire(57)
    breaker.record_success()
    assert breaker.state == CLOSED and breaker.acquire(57) and breaker.acquire(57) and breaker.batch_size(8) == 8


def test_a_half_open_probe_not_used_is_given_back() -> None:
    breaker = CircuitBreaker(failure_threshold=1, cooldown_seconds=1)
    breaker.record_failure(0)
    assert breaker.acquire(2)
    breaker.release()
    assert breaker.acquire(2)


# --- what the public sees ------------------------------------------------------------------------------------

def _score(unit: str, score: float | None, ratings: int, band: str = "satisfied", provisional: bool = False) -> dict:
    return {"unit_code": unit, "unit_name": f"name of {unit}", "period": "2026-11", "profile": "satisfied-share",
            "score": score, "max_score": 100.0, "band": band, "components": {"satisfied": 1, "officer_ids": []},
            "ratings": ratings, "dossiers": ratings, "version": 3, "updated_at": "2026-11-18T03:00:00+00:00",
            "provisional": provisional}


def test_fewer_ratings_than_the_threshold_show_insufficient_data_instead_of_figures() -> None:
    unit = UnitInfo("79.SNV", "Sở Nội vụ", "department", "79")
    few = public_result(_score("79.SNV", 100.0, 4), unit, min_ratings=5)
    assert (few.score, few.band, few.components, few.withheld, few.rankable) == (None, INSUFFICIENT, None, True, False)
    assert few.ratings == 4 and few.unit_name == "Sở Nội vụ" and few.level == "department"
    enough = public_result(_score("79.SNV", 80.0, 5), unit, min_ratings=5)
    assert (enough.score, enough.band, enough.rankable) == (80.0, "satisfied", True)
    scoring_says_insufficient = public_result(_score("79.SNV", 80.0, 50, band=INSUFFICIENT), unit, min_ratings=5)
    assert scoring_says_insufficient.score is None


def test_ties_share_a_rank_and_provisional_and_withheld_units_are_listed_unranked_after_final_ones() -> None:
    assert competition_ranks([90, 80, 80, 70]) == [1, 2, 2, 4]
    results = [
        public_result(_score("A", 80.0, 10), None, 5), public_result(_score("B", 90.0, 10), None, 5),
        public_result(_score("C", 80.0, 10), None, 5), public_result(_score("D", 99.0, 10, provisional=True), None, 5),
        public_result(_score("E", 100.0, 2), None, 5), public_result(_score("F", 70.0, 10), None, 5),
    ]
    ranked = rank_results(results)
    assert [(r.unit_code, r.rank) for r in ranked] == [
        ("B", 1), ("A", 2), ("C", 2), ("F", 4), ("D", None), ("E", None),
    ]


@pytest.mark.parametrize(
    ("band", "score", "tone"),
    [("satisfied", 85.0, "good"), ("not_satisfied", 60.0, "poor"), ("excellent", 95.0, "good"), ("weak", 40.0, "poor"),
     (INSUFFICIENT, None, "none"), ("band-nobody-knows", 95.0, "good"), ("band-nobody-knows", 75.0, "fair"),
     ("band-nobody-knows", 20.0, "poor")],
)
def test_bands_are_drawn_by_name_and_unknown_bands_by_the_share_of_the_maximum(band: str, score: float | None, tone: str) -> None:
    assert band_tone(band, score, 100.0) == tone


def test_each_target_gets_the_profiles_it_is_configured_for() -> None:
    assert pushes_profile(profile_filter(""), "sipas")
    only_hcmc = profile_filter(" hcmc-2024 , ")
    assert pushes_profile(only_hcmc, "hcmc-2024") and not pushes_profile(only_hcmc, "sipas")


# --- official results: quarters and years close at midnight in Việt Nam -------------------------------------

def test_a_quarter_closes_at_midnight_utc_plus_7() -> None:
    assert period_end(parse_period("2026-Q4")) == datetime(2027, 1, 1, tzinfo=VIETNAM)
    assert period_end(parse_period("2026-Q1")) == datetime(2026, 4, 1, tzinfo=VIETNAM)
    assert period_end(parse_period("2026")) == datetime(2027, 1, 1, tzinfo=VIETNAM)
    assert period_end(parse_period("2026-11")) == datetime(2026, 12, 1, tzinfo=VIETNAM)
    close = datetime(2026, 12, 31, 17, 0, tzinfo=UTC)  # 2027-01-01 00:00 in Việt Nam
    assert not has_closed("2026-Q4", close - timedelta(seconds=1)) and has_closed("2026-Q4", close)
    assert has_closed("2026", close)


def test_quarters_and_years_are_frozen_once_closed_and_settled_but_not_long_closed_history() -> None:
    close = datetime(2026, 12, 31, 17, 0, tzinfo=UTC)
    settle, catch_up = timedelta(minutes=5), timedelta(days=92)
    assert [p for p in ("2026-12", "2026-Q4", "2026-H2", "2026") if is_official_period(p)] == ["2026-Q4", "2026"]
    assert not due_for_snapshot("2026-Q4", close + timedelta(minutes=4), settle, catch_up)
    assert due_for_snapshot("2026-Q4", close + timedelta(minutes=5), settle, catch_up)
    assert due_for_snapshot("2026", close + timedelta(days=10), settle, catch_up)
    assert not due_for_snapshot("2026-12", close + timedelta(days=1), settle, catch_up)  # months are not official
    assert not due_for_snapshot("2026-H2", close + timedelta(days=1), settle, catch_up)
    assert not due_for_snapshot("2025-Q1", close, settle, catch_up)  # closed long ago: replaying history


# --- remediation transparency (Đà Nẵng 5697/2017 Art. 3, 7.2) ------------------------------------------------

def test_remediation_summary_counts_tickets_on_time_share_and_newest_measures() -> None:
    def at(day: int) -> datetime:
        return datetime(2026, 11, day, 10, tzinfo=UTC)

    tickets = [
        TicketFacts("service_conditions", "closed", at(2), at(9), resolved_at=at(6), closed_at=at(7), measures="Thay máy"),
        TicketFacts("procedure", "resolved", at(2), at(23), resolved_at=at(20), measures="Sửa quy trình"),
        TicketFacts("procedure", "closed", at(3), at(10), breached=True, resolved_at=at(12), closed_at=at(13)),
        TicketFacts("service_conditions", "open", at(20), at(27)),
        TicketFacts("service_conditions", "acknowledged", at(10), at(17), breached=True),
    ]
    summary = summarise(tickets, now=at(24))
    assert (summary.opened, summary.closed, summary.finished, summary.finished_on_time) == (5, 2, 3, 2)
    assert summary.on_time_share == pytest.approx(2 / 3)
    assert (summary.open_now, summary.overdue_now) == (2, 1)
    assert [m.text for m in summary.measures] == ["Sửa quy trình", "Thay máy"]
    assert summarise([], now=at(24)).on_time_share is None


# --- the map and the charts ----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("lon", "lat", "x", "y"),
    # d3.geoMercator().scale(2000).translate([-3400, 900]) computed by d3-geo 3.1 itself.
    [(105.8542, 21.0285, 295.0086341291635, 148.91007105983215), (106.7009, 10.7763, 324.5640396824351, 521.5985631986287),
     (112.3, 16.5, 520.0094999792641, 315.9113006977783)],
)
def test_units_are_projected_exactly_as_d3_projects_the_outline(lon: float, lat: float, x: float, y: float) -> None:
    assert Mercator(2000, -3400, 900).project(lon, lat) == pytest.approx((x, y), abs=1e-6)


def test_the_view_fits_the_units_keeps_the_aspect_ratio_and_never_leaves_the_map() -> None:
    whole = ViewBox(0, 0, 600, 700)
    assert fit_view([], whole) == whole
    assert fit_view([(0, 0), (600, 700)], whole) == whole
    view = fit_view([(300, 600), (302, 601)], whole, padding=0.1, min_size=60)
    assert view.width == pytest.approx(72) and view.height == pytest.approx(72 * 700 / 600)
    assert view.x <= 300 and view.x + view.width >= 302 and view.y + view.height <= 700
    corner = fit_view([(599, 699)], whole, min_size=60)
    assert corner.x + corner.width == pytest.approx(600) and corner.y + corner.height == pytest.approx(700)
    assert dot_radius(view, whole, base=6) == pytest.approx(6 * 72 / 600)


def test_a_month_without_a_publishable_figure_breaks_the_trend_line() -> None:
    chart = trend_chart([("T1", 80.0), ("T2", None), ("T3", 100.0), ("T4", 50.0)], 100.0, width=340, height=140,
                        margins=(10, 10, 30, 30))
    assert [p.x for p in chart.points] == [30.0, 130.0, 230.0, 330.0]
    assert [None if p.y is None else round(p.y, 6) for p in chart.points] == [30.0, None, 10.0, 60.0]
    assert chart.segments == ["30.0,30.0", "230.0,10.0 330.0,60.0"]
    assert chart.y_ticks[0] == (0.0, 110.0) and chart.y_ticks[-1] == (100.0, 10.0)


# --- open data --------------------------------------------------------------------------------------------------

def test_the_csv_follows_its_published_table_schema() -> None:
    results = rank_results([public_result(_score("79.SNV", 90.0, 12), UnitInfo("79.SNV", "Sở Nội vụ, TP.HCM", "department", "79"), 5),
                            public_result(_score("79.STP", 50.0, 2), None, 5)])
    text = rankings_csv(results, "official", 2)
    lines = text.splitlines()
    package = data_package("https://hailong.example")
    fields = [f["name"] for f in package["resources"][0]["schema"]["fields"]]
    assert lines[0].split(",") == fields == RANKING_COLUMNS
    assert lines[1] == ('1,79.SNV,"Sở Nội vụ, TP.HCM",department,79,2026-11,satisfied-share,official,2,90.0,100.0,satisfied,'
                        'false,12,12,3,2026-11-18T03:00:00+00:00')
    assert ",insufficient_data," in lines[2] and lines[2].startswith(",79.STP,")
    assert package["licenses"][0]["name"] == "CC-BY-4.0"
    assert package["resources"][1]["path"] == "https://hailong.example/v1/public/units.geojson"


def test_snapshots_wait_until_this_publisher_has_read_the_scores_topic_to_its_end() -> None:
    from types import SimpleNamespace

    from services.publisher.snapshots import caught_up
    from shared.metrics import CONSUMER_LAG
    from shared.settings import Settings

    runtime = SimpleNamespace(settings=Settings(topic_prefix="lagtest."), spec=SimpleNamespace(name="publisher"))
    assert not caught_up(runtime)  # nothing read yet: unknown
    CONSUMER_LAG.labels("publisher", "lagtest.scores.v1", "0").set(0)
    CONSUMER_LAG.labels("publisher", "lagtest.scores.v1", "1").set(12)
    CONSUMER_LAG.labels("publisher", "lagtest.tickets.v1", "0").set(0)
    assert not caught_up(runtime)
    CONSUMER_LAG.labels("publisher", "lagtest.scores.v1", "1").set(0)
    CONSUMER_LAG.labels("scoring", "lagtest.scores.v1", "2").set(99)  # another service's lag is not ours
    assert caught_up(runtime)
