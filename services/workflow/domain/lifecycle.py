"""A ticket's lifecycle — pure: which action may move a ticket from its status, for which role, and to what.

open → acknowledged → plan_submitted → resolved → verified → closed, with reopen; a unit may dispute
survey results within 5 working days of receiving them and Home Affairs answers within 7 (Đà Nẵng
5697/2017 Art. 3.2); escalation climbs Home Affairs → People's Committee and never changes the status.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from services.workflow.domain.remediation import DEFAULT_RULES, Rules
from shared.calendar import WorkingCalendar

OPEN, ACKNOWLEDGED, PLAN_SUBMITTED = "open", "acknowledged", "plan_submitted"
RESOLVED, VERIFIED, CLOSED, DISPUTED = "resolved", "verified", "closed", "disputed"
STATUSES = (OPEN, ACKNOWLEDGED, PLAN_SUBMITTED, DISPUTED, RESOLVED, VERIFIED, CLOSED)
UNIT_OWES = (OPEN, ACKNOWLEDGED, PLAN_SUBMITTED)  # the unit must act before due_at
# Past due_at in one of these, a ticket is breached: the unit owes a remedy, or Home Affairs an answer.
DEADLINE_STATUSES = (*UNIT_OWES, DISPUTED)

HOME_AFFAIRS, PEOPLES_COMMITTEE = "home_affairs", "peoples_committee"
ESCALATION_LADDER = (None, HOME_AFFAIRS, PEOPLES_COMMITTEE)
SYSTEM = "system"
# Only survey results can be contested; a late dossier or a repeated-dissatisfaction record cannot.
DISPUTABLE_SOURCES = frozenset({"rating", "score"})
UNIT_SIDE = ("unit_head", "admin")
SUPERVISORS = ("home_affairs", "admin")


@dataclass(frozen=True)
class Action:
    name: str
    from_statuses: tuple[str, ...]
    to_status: str | None  # None: the status stays (escalate), or returns to where it was (reject_dispute)
    roles: tuple[str, ...]
    note_required: bool = False


ACTIONS: dict[str, Action] = {a.name: a for a in (
    Action("acknowledge", (OPEN,), ACKNOWLEDGED, ("unit_head", "officer", "admin")),
    Action("submit_plan", (OPEN, ACKNOWLEDGED), PLAN_SUBMITTED, UNIT_SIDE, note_required=True),
    Action("resolve", (OPEN, ACKNOWLEDGED, PLAN_SUBMITTED), RESOLVED, UNIT_SIDE, note_required=True),
    Action("verify", (RESOLVED,), VERIFIED, ("home_affairs", "inspector", "admin")),
    Action("close", (VERIFIED,), CLOSED, SUPERVISORS),
    Action("reopen", (RESOLVED, VERIFIED, CLOSED), OPEN, ("home_affairs", "inspector", "admin"), note_required=True),
    Action("dispute", (OPEN, ACKNOWLEDGED), DISPUTED, ("unit_head",), note_required=True),
    Action("uphold_dispute", (DISPUTED,), CLOSED, SUPERVISORS, note_required=True),
    Action("reject_dispute", (DISPUTED,), None, SUPERVISORS, note_required=True),
    Action("escalate", (OPEN, ACKNOWLEDGED, PLAN_SUBMITTED, DISPUTED, RESOLVED, VERIFIED), None,
           ("home_affairs", "inspector", "admin", SYSTEM)),
)}


@dataclass(frozen=True)
class TicketState:
    status: str
    source: str
    category: str
    opened_at: datetime
    due_at: datetime
    escalated_to: str | None = None
    status_before_dispute: str | None = None


@dataclass(frozen=True)
class Transition:
    action: str
    from_status: str
    to_status: str
    due_at: datetime  # the deadline from now on: unchanged unless the clock restarts
    clock_restarted: bool = False
    escalated_to: str | None = None
    status_before_dispute: str | None = None
    resolved: bool = False
    closed: bool = False


class TransitionRefused(Exception):
    """403: the role may not take this action; 409: the ticket's status (or a window) does not allow it."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


def dispute_window_ends(state: TicketState, calendar: WorkingCalendar, rules: Rules = DEFAULT_RULES) -> datetime:
    """The unit receives the results when the ticket opens; it may contest them up to this moment."""
    return calendar.deadline(state.opened_at, rules.dispute_window_working_days)


def next_escalation(current: str | None) -> str | None:
    """One rung up the ladder; None when already at the People's Committee."""
    index = ESCALATION_LADDER.index(current)
    return ESCALATION_LADDER[index + 1] if index + 1 < len(ESCALATION_LADDER) else None


def decide(
    state: TicketState, action_name: str, role: str, now: datetime, calendar: WorkingCalendar,
    rules: Rules = DEFAULT_RULES, note: str | None = None,
) -> Transition:
    """The transition `role` asks for, or TransitionRefused saying why not."""
    action = ACTIONS.get(action_name)
    if action is None:
        raise TransitionRefused(422, "Unknown action", f"{action_name!r} is not one of {', '.join(ACTIONS)}")
    if role not in action.roles:
        raise TransitionRefused(403, "Forbidden", f"role {role!r} may not {action_name} a ticket")
    if state.status not in action.from_statuses:
        raise TransitionRefused(409, "Not allowed in this status", f"a {state.status} ticket cannot be {action_name}d; "
                                f"{action_name} is allowed from {', '.join(action.from_statuses)}")
    if action.note_required and not (note or "").strip():
        raise TransitionRefused(422, "A note is required", f"{action_name} needs a note saying what and why")
    same = Transition(action_name, state.status, state.status, state.due_at,
                      escalated_to=state.escalated_to, status_before_dispute=state.status_before_dispute)
    restart = calendar.deadline(now, rules.days_for(state.category))
    if action_name == "dispute":
        if state.source not in DISPUTABLE_SOURCES:
            raise TransitionRefused(409, "Not disputable", f"only survey results can be contested, not a {state.category} ticket")
        window = dispute_window_ends(state, calendar, rules)
        if now > window:
            raise TransitionRefused(409, "Dispute window closed", f"results could be contested until {window.isoformat()}")
        answer_due = calendar.deadline(now, rules.dispute_answer_working_days)
        return _replace(same, to_status=DISPUTED, due_at=answer_due, clock_restarted=True, status_before_dispute=state.status)
    if action_name == "reject_dispute":
        # The results stand and are final only now: the remedy's working days run from the answer.
        back = state.status_before_dispute or OPEN
        return _replace(same, to_status=back, due_at=restart, clock_restarted=True, status_before_dispute=None)
    if action_name == "reopen":
        return _replace(same, to_status=OPEN, due_at=restart, clock_restarted=True)
    if action_name == "escalate":
        higher = next_escalation(state.escalated_to)
        if higher is None:
            raise TransitionRefused(409, "Already at the top", "the ticket is already with the People's Committee")
        return _replace(same, escalated_to=higher)
    assert action.to_status is not None
    return _replace(same, to_status=action.to_status, resolved=action.to_status == RESOLVED, closed=action.to_status == CLOSED)


def _replace(base: Transition, **changes: object) -> Transition:
    return replace(base, **changes)  # type: ignore[arg-type]


def owner_of_deadline(status: str) -> str:
    """Who must act before due_at: the unit, or Home Affairs answering a dispute."""
    return HOME_AFFAIRS if status == DISPUTED else "unit"


def breach_escalation(state: TicketState) -> str | None:
    """Where a breached ticket goes: a unit's breach to Home Affairs, Home Affairs' breach one rung higher."""
    if owner_of_deadline(state.status) == HOME_AFFAIRS:
        return PEOPLES_COMMITTEE if state.escalated_to != PEOPLES_COMMITTEE else None
    return HOME_AFFAIRS if state.escalated_to is None else None
