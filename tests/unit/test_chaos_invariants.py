"""The chaos run's judgement (chaos/invariants.py) and its seeded plans: each check fails on the violation it is
there to catch, passes on a faithful record, and the same seed draws the same ratings and faults."""

from __future__ import annotations

from datetime import datetime, timezone

from chaos.faults import TARGETS, plan_faults
from chaos.invariants import (
    TopicRating, check_counted_once, check_dlqs_empty, check_one_ticket_per_cause, check_refused_not_counted,
    check_targets_newest, counted_ratings, expected_counts, sort_fates,
)
from chaos.kiosks import NO_ANSWER, NOT_SENT, Attempt, Behaviour, Post, RatingRecord, draw_record, quarter_months
from chaos.targets import Held
from shared.periods import VIETNAM

NOV = datetime(2026, 11, 18, 10, 0, tzinfo=VIETNAM)
PARENTS: dict[str, str | None] = {"79": None, "79.SNV": "79"}


def _record(code: str, *rating_outcomes: tuple[str, str | None, str | None], dossier: str = "202", **posts: list[str]) -> RatingRecord:
    record = RatingRecord(0, "79.SNV", code, NOV.isoformat(), NOV.isoformat(), "satisfied", [], "kiosk", False, False, False)
    record.posts.append(Post("dossier", "k-d", [Attempt(1.0, dossier)]))
    record.posts.append(Post("rating", "k-r", [Attempt(2.0, o, rid, status) for o, rid, status in rating_outcomes]))
    for purpose, outcomes in posts.items():
        record.posts.append(Post(purpose, "k-x", [Attempt(3.0, o, "r-" + code if o in ("202", "409") else None) for o in outcomes]))
    return record


def _topic(*pairs: tuple[str, str], overall: str = "satisfied", reasons: list[str] | None = None) -> dict[str, TopicRating]:
    return {rid: TopicRating(rid, code, "79.SNV", NOV, overall, reasons or [], {f"e-{rid}"}, 1) for code, rid in pairs}


def _cards(ratings: int, dossiers: int) -> dict[tuple[str, str, str], dict | None]:
    cards: dict[tuple[str, str, str], dict | None] = {}
    for unit in ("79", "79.SNV"):
        for period in ("2026-11", "2026-Q4", "2026-H2", "2026"):
            cards[("satisfied-share", unit, period)] = {"ratings": ratings, "dossiers": dossiers, "version": 3}
    return cards


def test_the_fate_of_each_rating_is_what_its_kiosk_can_know() -> None:
    fates = sort_fates([
        _record("A", ("503", None, None), ("202", "r-A", "accepted")),
        _record("B", (NO_ANSWER, None, None), ("409", "r-B", None)),
        _record("C", ("503", None, None)),
        _record("D", (NOT_SENT, None, None)),
        _record("E", ("503", None, None), (NO_ANSWER, None, None)),
        _record("F", ("202", "r-F", "accepted"), resend=["202"]),
    ])
    assert fates.acknowledged == {"A": "r-A", "F": "r-F"}
    assert fates.acknowledged_by_conflict == {"B": "r-B"}
    assert (fates.refused_5xx, fates.refused_otherwise, fates.unknown) == ({"C"}, {"D"}, {"E"})
    assert fates.key_reanswered_differently == []


def test_a_key_answered_with_two_rating_ids_and_a_second_press_counted_are_caught() -> None:
    fates = sort_fates([_record("A", ("202", "r-1", "accepted"), resend=["202"]),
                        _record("B", ("202", "r-B", "accepted"), second_press=["202"])])
    assert len(fates.key_reanswered_differently) == 1 and len(fates.second_press_counted) == 1
    verdict = check_counted_once(fates, _topic(("A", "r-1"), ("B", "r-B")), _cards(2, 2), PARENTS,
                                 {"A": ("79.SNV", NOV), "B": ("79.SNV", NOV)})
    assert not verdict.held


def test_counted_once_holds_on_a_faithful_record_and_fails_on_a_double_count_or_a_loss() -> None:
    fates = sort_fates([_record("A", ("202", "r-A", "accepted")), _record("B", ("202", "r-B", "accepted"))])
    topic = _topic(("A", "r-A"), ("B", "r-B"))
    dossiers = {"A": ("79.SNV", NOV), "B": ("79.SNV", NOV)}
    assert check_counted_once(fates, topic, _cards(2, 2), PARENTS, dossiers).held
    twice = check_counted_once(fates, topic, _cards(3, 2), PARENTS, dossiers)
    assert not twice.held and twice.numbers["unit_periods_wrong"] == 8
    lost = check_counted_once(fates, _topic(("A", "r-A")), _cards(1, 2), PARENTS, dossiers)
    assert not lost.held and lost.numbers["missing_from_topic"] == 1


def test_a_rating_refused_with_a_5xx_but_counted_fails_and_an_unknown_one_may_go_either_way() -> None:
    fates = sort_fates([_record("C", ("503", None, None)), _record("E", (NO_ANSWER, None, None))])
    assert check_refused_not_counted(fates, _topic(("E", "r-E"))).held
    verdict = check_refused_not_counted(fates, _topic(("C", "r-C")))
    assert not verdict.held and verdict.problems == ["answered 5xx, counted: C"]


def test_the_map_must_hold_scorings_newest_version() -> None:
    cards = {("hcmc-2024", "79.SNV", "2026-11"): {"version": 7, "ratings": 40}}
    clean = {"bad_signatures": 0, "bad_tokens": 0, "stale_pushes": 0, "key_conflicts": 0}
    newest = {("79.SNV", "2026-11", "live"): Held(7, {"ratings": 40})}
    assert check_targets_newest(cards, {"map": newest}, {"map": clean}, 0, {"map": "hcmc-2024"}).held
    stale = {("79.SNV", "2026-11", "live"): Held(6, {"ratings": 39})}
    assert not check_targets_newest(cards, {"map": stale}, {"map": clean}, 0, {"map": "hcmc-2024"}).held
    assert not check_targets_newest(cards, {"map": newest}, {"map": {**clean, "bad_signatures": 1}}, 0, {"map": "hcmc-2024"}).held
    assert not check_targets_newest(cards, {"map": newest}, {"map": clean}, 1, {"map": "hcmc-2024"}).held


def test_two_tickets_for_one_cause_or_a_rating_attached_twice_fail() -> None:
    topic = _topic(("A", "r-A"), ("B", "r-B"), overall="dissatisfied", reasons=["attitude"])
    ticket = {"id": "t1", "unit_code": "79.SNV", "category": "service_conditions", "period": "2026-11", "source": "rating",
              "status": "open", "rating_count": 2}
    assert check_one_ticket_per_cause([ticket], {"t1": None}, topic, set()).held
    twice = check_one_ticket_per_cause([ticket, {**ticket, "id": "t2", "rating_count": 0}], {}, topic, set())
    assert not twice.held and twice.numbers["causes_with_two_tickets"] == 1
    assert not check_one_ticket_per_cause([{**ticket, "rating_count": 3}], {}, topic, set()).held
    letter = {"id": "t3", "unit_code": "79.SNV", "category": "apology_letter", "period": "2026-11", "source": "dossier", "status": "open"}
    assert check_one_ticket_per_cause([ticket, letter], {"t3": "LATE-1"}, topic, {"LATE-1"}).held
    assert not check_one_ticket_per_cause([ticket], {}, topic, {"LATE-1"}).held


def test_dlqs_must_be_empty() -> None:
    assert check_dlqs_empty({"hailong.ratings.v1.dlq": 0}).held
    assert not check_dlqs_empty({"hailong.ratings.v1.dlq": 0, "hailong.scores.v1.dlq": 2}).held


def test_a_rating_counts_at_its_unit_and_every_ancestor_in_four_periods() -> None:
    counts = expected_counts([("79.SNV", NOV)], PARENTS)
    assert counts == {(u, p): 1 for u in ("79", "79.SNV") for p in ("2026-11", "2026-Q4", "2026-H2", "2026")}


def test_only_this_runs_accepted_ratings_count_and_a_republished_event_is_one_rating() -> None:
    event = {"id": "e1", "type": "vn.hailong.rating.accepted.v1", "data": {
        "rating_id": "r1", "dossier_code": "CHAOS-x-1", "unit_code": "79.SNV", "dossier_completed_at": NOV.isoformat(),
        "overall": "satisfied", "reasons": []}}
    other = {**event, "id": "e2", "data": {**event["data"], "rating_id": "r2", "dossier_code": "OTHER-1"}}
    topic = counted_ratings([event, event, other], "CHAOS-x-")
    assert list(topic) == ["r1"] and topic["r1"].copies == 2


def test_the_same_seed_draws_the_same_ratings_and_faults() -> None:
    now = datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc)
    first = [draw_record(42, i, "run", now, Behaviour())[1:] for i in range(50)]
    assert first == [draw_record(42, i, "run", now, Behaviour())[1:] for i in range(50)]
    assert first != [draw_record(43, i, "run", now, Behaviour())[1:] for i in range(50)]
    assert plan_faults(42, 20_000) == plan_faults(42, 20_000)
    assert plan_faults(42, 20_000) != plan_faults(43, 20_000)


def test_every_part_fails_once_while_ratings_arrive_and_apart() -> None:
    plan = plan_faults(7, 20_000)
    assert sorted(f.target for f in plan) == sorted(TARGETS)
    moments = [f.at_rating for f in plan]
    assert moments == sorted(moments) and 1_000 <= moments[0] and moments[-1] <= 17_000
    assert min(b - a for a, b in zip(moments, moments[1:])) >= 0.4 * (16_000 / len(TARGETS)) - 1


def test_ratings_belong_to_the_current_quarter_and_never_to_the_future() -> None:
    now = datetime(2026, 10, 2, 1, 0, tzinfo=timezone.utc)  # early in a quarter: one month to draw from
    assert quarter_months(now) == [(2026, 10)]
    for index in range(200):
        record, dossier, rating = draw_record(1, index, "run", now, Behaviour())
        completed = datetime.fromisoformat(dossier["completed_at"])
        assert (completed.astimezone(VIETNAM).year, completed.astimezone(VIETNAM).month) == (2026, 10)
        assert completed <= datetime.fromisoformat(rating["submitted_at"]) <= now
        assert record.late == (completed.astimezone(VIETNAM).date() > datetime.fromisoformat(dossier["due_at"]).astimezone(VIETNAM).date())
