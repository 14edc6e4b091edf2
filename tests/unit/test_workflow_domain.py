"""Workflow's pure rules against dates worked out by hand from DOMAIN.md's calendar and the regulations."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.workflow.domain import lifecycle, obligations, repeated, sampling
from services.workflow.domain.lifecycle import TicketState, TransitionRefused, decide
from services.workflow.domain.remediation import DEFAULT_RULES
from shared.calendar import default_calendar
from shared.periods import VIETNAM, parse_period

CALENDAR = default_calendar()


def vn(*args: int) -> datetime:
    return datetime(*args, tzinfo=VIETNAM)


def ticket(status: str = "open", opened: datetime = vn(2025, 4, 25, 9), category: str = "service_conditions",
           source: str = "rating", **changes: object) -> TicketState:
    due = CALENDAR.deadline(opened, DEFAULT_RULES.days_for(category))
    return TicketState(status=status, source=source, category=category, opened_at=opened, due_at=due, **changes)  # type: ignore[arg-type]


# --- deadlines across the holidays of 2025-2027 -------------------------------------------------------------

@pytest.mark.parametrize(("opened", "category", "due"), [
    # DOMAIN.md: Fri 25 Apr 2025 + 5 → Tue 6 May (Sat 26 Apr worked; 30 Apr, 1-2 May off).
    (vn(2025, 4, 25, 9), "service_conditions", date(2025, 5, 6)),
    # DOMAIN.md: Wed 31 Dec 2025 + 15 → Thu 22 Jan 2026.
    (vn(2025, 12, 31, 16), "procedure", date(2026, 1, 22)),
    # Tết 2026 (Mon 16 - Fri 20 Feb off): Thu 12 Feb + 15 → 13 Feb, 23-27 Feb, 2-6 Mar, 9-12 Mar → Thu 12 Mar.
    (vn(2026, 2, 12, 10), "procedure", date(2026, 3, 12)),
    # 2/9 2025 (Mon 1, Tue 2 Sep off): Thu 28 Aug + 5 → 29 Aug, 3, 4, 5, 8 Sep → Mon 8 Sep.
    (vn(2025, 8, 28, 10), "service_conditions", date(2025, 9, 8)),
    # Tết 2027 (Thu 4 - Wed 10 Feb off): Tue 2 Feb + 5 → 3, 11, 12, 15, 16 Feb → Tue 16 Feb.
    (vn(2027, 2, 2, 10), "service_conditions", date(2027, 2, 16)),
    # 30/4-1/5 2027 (Fri 30 Apr off, Sat 1 May observed Mon 3 May): Wed 28 Apr + 5 → 29 Apr, 4-7 May → Fri 7 May.
    (vn(2027, 4, 28, 10), "service_conditions", date(2027, 5, 7)),
])
def test_ticket_deadlines_are_the_end_of_the_nth_working_day(opened: datetime, category: str, due: date) -> None:
    deadline = CALENDAR.deadline(opened, DEFAULT_RULES.days_for(category))
    assert deadline == datetime.combine(due, datetime.max.time().replace(microsecond=0), tzinfo=VIETNAM)


@pytest.mark.parametrize(("due", "remind_on"), [
    # Due Tue 6 May 2025: 2 working days remain from Tue 29 Apr (30 Apr - 4 May are off or weekend).
    (date(2025, 5, 6), date(2025, 4, 29)),
    # Due Tue 24 Feb 2026: Tết takes 16-20 Feb, so from Fri 13 Feb only 23 and 24 Feb remain.
    (date(2026, 2, 24), date(2026, 2, 13)),
    # Due Fri 7 May 2027: Wed 5 May leaves 6 and 7 May.
    (date(2027, 5, 7), date(2027, 5, 5)),
])
def test_the_reminder_day_leaves_two_working_days(due: date, remind_on: date) -> None:
    assert CALENDAR.subtract_working_days(due, 2) == remind_on
    assert CALENDAR.working_days_between(remind_on, due) == 2


# --- the lifecycle ---------------------------------------------------------------------------------------------

def test_the_happy_path_runs_open_to_closed_with_the_right_roles() -> None:
    now = vn(2025, 4, 28, 9)
    state = ticket()
    path = [("acknowledge", "unit_head", "acknowledged"), ("submit_plan", "unit_head", "plan_submitted"),
            ("resolve", "unit_head", "resolved"), ("verify", "home_affairs", "verified"), ("close", "home_affairs", "closed")]
    for action, role, to_status in path:
        move = decide(state, action, role, now, CALENDAR, note="done")
        assert (move.from_status, move.to_status) == (state.status, to_status)
        state = TicketState(move.to_status, state.source, state.category, state.opened_at, move.due_at)
    assert state.due_at == ticket().due_at  # nothing on the way restarted the clock


@pytest.mark.parametrize(("status", "action", "role", "code"), [
    ("open", "verify", "home_affairs", 409),  # nothing resolved yet
    ("closed", "acknowledge", "unit_head", 409),
    ("open", "close", "unit_head", 403),  # only the supervisor closes
    ("resolved", "verify", "unit_head", 403),  # a unit does not verify its own remedy
    ("open", "resolve", "officer", 403),
    ("open", "dispute", "home_affairs", 403),  # the unit contests, not the surveying body
    ("plan_submitted", "dispute", "unit_head", 409),
    ("open", "escalate", "unit_head", 403),
])
def test_only_allowed_transitions_for_the_callers_role(status: str, action: str, role: str, code: int) -> None:
    with pytest.raises(TransitionRefused) as refused:
        decide(ticket(status), action, role, vn(2025, 4, 28, 9), CALENDAR, note="x")
    assert refused.value.status == code


def test_a_plan_and_a_resolution_need_a_note() -> None:
    with pytest.raises(TransitionRefused) as refused:
        decide(ticket(), "submit_plan", "unit_head", vn(2025, 4, 28, 9), CALENDAR, note="  ")
    assert refused.value.status == 422


def test_a_dispute_is_allowed_within_five_working_days_and_answered_within_seven() -> None:
    # Opened Fri 25 Apr 2025: the window ends Tue 6 May 23:59:59 (DOMAIN.md's example).
    state = ticket(opened=vn(2025, 4, 25, 9))
    assert lifecycle.dispute_window_ends(state, CALENDAR) == vn(2025, 5, 6, 23, 59, 59)
    move = decide(state, "dispute", "unit_head", vn(2025, 5, 6, 16), CALENDAR, note="the kiosk was broken that day")
    # Contested Tue 6 May: 7, 8, 9, 12, 13, 14, 15 May → the answer is due Thu 15 May 2025.
    assert move.to_status == "disputed" and move.due_at == vn(2025, 5, 15, 23, 59, 59)
    assert move.status_before_dispute == "open"
    with pytest.raises(TransitionRefused) as late:
        decide(state, "dispute", "unit_head", vn(2025, 5, 7, 8), CALENDAR, note="too late")
    assert late.value.status == 409 and late.value.title == "Dispute window closed"


def test_a_rejected_dispute_restarts_the_remedy_clock_from_the_answer() -> None:
    state = ticket("disputed", category="procedure", status_before_dispute="acknowledged")
    answered = vn(2025, 12, 31, 15)
    move = decide(state, "reject_dispute", "home_affairs", answered, CALENDAR, note="the results stand")
    # 15 working days from Wed 31 Dec 2025 → Thu 22 Jan 2026 (DOMAIN.md).
    assert move.to_status == "acknowledged" and move.due_at == vn(2026, 1, 22, 23, 59, 59) and move.clock_restarted
    upheld = decide(state, "uphold_dispute", "home_affairs", answered, CALENDAR, note="survey error")
    assert upheld.to_status == "closed" and upheld.closed


def test_late_dossiers_and_repeated_dissatisfaction_cannot_be_disputed() -> None:
    with pytest.raises(TransitionRefused) as refused:
        decide(ticket(category="apology_letter", source="dossier"), "dispute", "unit_head", vn(2025, 4, 25, 10), CALENDAR, note="x")
    assert refused.value.title == "Not disputable"


def test_escalation_climbs_the_ladder_and_keeps_the_status() -> None:
    first = decide(ticket("acknowledged"), "escalate", "home_affairs", vn(2025, 5, 8), CALENDAR)
    assert (first.to_status, first.escalated_to) == ("acknowledged", "home_affairs")
    second = decide(ticket("acknowledged", escalated_to="home_affairs"), "escalate", "home_affairs", vn(2025, 5, 8), CALENDAR)
    assert second.escalated_to == "peoples_committee"
    with pytest.raises(TransitionRefused):
        decide(ticket(escalated_to="peoples_committee"), "escalate", "admin", vn(2025, 5, 8), CALENDAR)


def test_a_breach_goes_to_home_affairs_and_home_affairs_own_breach_higher() -> None:
    assert lifecycle.breach_escalation(ticket("open")) == "home_affairs"
    assert lifecycle.breach_escalation(ticket("open", escalated_to="home_affairs")) is None
    assert lifecycle.breach_escalation(ticket("disputed")) == "peoples_committee"


def test_reopen_gives_a_fresh_deadline() -> None:
    move = decide(ticket("closed"), "reopen", "inspector", vn(2025, 4, 25, 9), CALENDAR, note="complaint came back")
    assert move.to_status == "open" and move.due_at == vn(2025, 5, 6, 23, 59, 59)


# --- phúc tra sampling -----------------------------------------------------------------------------------------

def test_the_sample_is_a_quarter_rounded_up_reproducible_and_order_free() -> None:
    ids = [f"r-{i}" for i in range(10)]
    sample = sampling.draw_sample(ids, rate=0.25, seed="s", period="2026-11", unit_code="79.SNV")
    assert len(sample) == 3 and set(sample) <= set(ids)
    assert sampling.draw_sample(list(reversed(ids)), rate=0.25, seed="s", period="2026-11", unit_code="79.SNV") == sample
    other_month = sampling.draw_sample(ids, rate=0.25, seed="s", period="2026-12", unit_code="79.SNV")
    assert len(other_month) == 3
    assert sampling.sample_size(1, 0.2) == 1 and sampling.sample_size(0, 0.3) == 0 and sampling.sample_size(20, 0.2) == 4
    with pytest.raises(ValueError):
        sampling.sample_size(10, 0.35)  # outside Đà Nẵng Art. 8.2's 20-30%


def test_the_sample_spreads_over_the_population() -> None:
    ids = [f"rating-{i:04d}" for i in range(2000)]
    draws = [set(sampling.draw_sample(ids, rate=0.2, seed=f"seed-{n}", period="2026-11", unit_code="U")) for n in range(5)]
    assert all(len(d) == 400 for d in draws)
    assert len(set.union(*draws)) > 1000  # different seeds draw different ratings


# --- obligations -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("opened", "period", "due"), [
    (vn(2026, 6, 14, 23, 30), "2026-H1", vn(2026, 6, 15)),
    (vn(2026, 6, 15, 0, 5), "2026-H2", vn(2026, 12, 15)),
    (vn(2026, 12, 20, 9), "2027-H1", vn(2027, 6, 15)),
])
def test_a_ticket_belongs_to_the_next_remediation_report(opened: datetime, period: str, due: datetime) -> None:
    report = obligations.remediation_report_for("79.SNV", opened)
    assert (report.period, report.due_at, report.scope) == (period, due, "79.SNV")


def test_home_affairs_and_ranking_reports_and_their_status() -> None:
    assert obligations.annual_report(2026).due_at == vn(2027, 1, 30)
    assert obligations.monthly_ranking_report(parse_period("2026-12")).due_at == vn(2027, 1, 25)
    assert obligations.monthly_ranking_report(parse_period("2026-11")).due_at == vn(2026, 12, 25)
    due = vn(2026, 12, 25)
    assert obligations.status_of(due, due - timedelta(seconds=1), due) == "met"
    assert obligations.status_of(due, due, due) == "met_late"  # "before the 25th": on the 25th is late
    assert obligations.status_of(due, None, due - timedelta(days=1)) == "pending"
    assert obligations.status_of(due, None, due) == "overdue"
    around = {(o.kind, o.period) for o in obligations.province_obligations_around(datetime(2027, 1, 10, tzinfo=timezone.utc))}
    assert around == {("annual_report", "2026"), ("monthly_ranking_report", "2026-12"), ("monthly_ranking_report", "2027-01")}


# --- repeated dissatisfaction ----------------------------------------------------------------------------------

def test_two_consecutive_years_not_satisfied_are_repeated() -> None:
    bands = {2024: "not_satisfied", 2025: "not_satisfied", 2026: "satisfied"}
    assert repeated.is_repeated(bands, 2025)
    assert not repeated.is_repeated(bands, 2026)
    assert not repeated.is_repeated({2023: "not_satisfied", 2025: "not_satisfied"}, 2025)  # not consecutive
    assert repeated.consecutive_years_not_satisfied({2024: "not_satisfied", 2025: "not_satisfied", 2026: "not_satisfied"}, 2026) == 3


def test_a_late_rating_gets_the_same_chance_and_always_the_same_answer() -> None:
    ids = [f"late-{i}" for i in range(4000)]
    chosen = [i for i in ids if sampling.in_late_sample(i, rate=0.25, seed="s", period="2026-11", unit_code="U")]
    assert 0.22 < len(chosen) / len(ids) < 0.28
    assert chosen == [i for i in ids if sampling.in_late_sample(i, rate=0.25, seed="s", period="2026-11", unit_code="U")]


ROLES = ("admin", "unit_head", "officer", "inspector", "home_affairs", "peoples_committee", "kiosk")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(sorted(lifecycle.ACTIONS)), st.sampled_from(ROLES), st.integers(0, 40)), max_size=25))
def test_any_sequence_of_requests_keeps_the_ticket_in_a_known_state(requests: list[tuple[str, str, int]]) -> None:
    state, now, ladder = ticket(), vn(2025, 4, 25, 10), lifecycle.ESCALATION_LADDER
    for action, role, hours in requests:
        now += timedelta(hours=hours)
        try:
            move = decide(state, action, role, now, CALENDAR, note="because")
        except TransitionRefused as refused:
            assert refused.status in (403, 409)
            assert role not in lifecycle.ACTIONS[action].roles or state.status not in lifecycle.ACTIONS[action].from_statuses \
                or refused.title in ("Dispute window closed", "Already at the top", "Not disputable")
            continue
        assert role in lifecycle.ACTIONS[action].roles and state.status in lifecycle.ACTIONS[action].from_statuses
        assert move.to_status in lifecycle.STATUSES and move.due_at > state.opened_at
        assert ladder.index(move.escalated_to) >= ladder.index(state.escalated_to)  # escalation never goes back down
        if move.clock_restarted:
            assert move.due_at > now
        state = TicketState(move.to_status, state.source, state.category, state.opened_at, move.due_at,
                            escalated_to=move.escalated_to, status_before_dispute=move.status_before_dispute)
