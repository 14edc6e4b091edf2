"""What must hold after a chaos run, judged from what the run observed — pure functions, no I/O.

The inputs are the kiosks' ledger (every attempt and answer), the topics read from the beginning by an
outside consumer, scoring's figures, workflow's tickets, what the push targets hold, and the DLQs. Each
check returns a Verdict with the numbers behind it, so a failure says what went wrong and how often.

A rating's fate, as the kiosks know it:
- acknowledged: some attempt was answered 202 (or, after an attempt that timed out, 409 naming the
  rating its own earlier attempt created) — it must be counted exactly once;
- refused: no 202, and every attempt was either answered (5xx, 4xx) or never sent (connection refused) —
  it must not be counted;
- unknown: no 202, and some attempt timed out or was cut off after sending, then the kiosk gave up —
  the service may have accepted it or not; either is correct, and the report says which happened.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from chaos.kiosks import NO_ANSWER, RatingRecord
from services.workflow.domain.lifecycle import DEADLINE_STATUSES
from services.workflow.domain.remediation import APOLOGY_LETTER, UNIT_PLAN, remedies_for
from shared.events import RATING_ACCEPTED
from shared.periods import local_time, periods_containing

COUNTED_PROFILE = "satisfied-share"  # its figure counts every counted rating and every resolved dossier
MAP_PROFILE, PORTAL_PROFILE = "hcmc-2024", "qd766-satisfaction"  # what each target receives (the defaults)


@dataclass
class Verdict:
    name: str
    held: bool
    summary: str
    numbers: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # the first few offending items, for the log and report

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "held": self.held, "summary": self.summary, "numbers": self.numbers,
                "problems": self.problems[:20]}


@dataclass
class Fates:
    """Every rating of the run sorted by what its kiosk knows about it (dossier code → rating id)."""

    acknowledged: dict[str, str] = field(default_factory=dict)  # answered 202 (rating id from the answer)
    acknowledged_by_conflict: dict[str, str] = field(default_factory=dict)  # timed out, then 409 naming its rating
    pending: dict[str, str] = field(default_factory=dict)  # 202 pending_dossier and its dossier never acknowledged
    refused_5xx: set[str] = field(default_factory=set)  # refused, at least once with a 5xx
    refused_otherwise: set[str] = field(default_factory=set)  # refused without a 5xx (connection refused, 4xx)
    unknown: set[str] = field(default_factory=set)  # no answer to some attempt, then the kiosk gave up
    dossiers_acknowledged: set[str] = field(default_factory=set)
    dossiers_unknown: set[str] = field(default_factory=set)
    key_reanswered_differently: list[str] = field(default_factory=list)  # one key, two different rating ids
    second_press_counted: list[str] = field(default_factory=list)  # a new key for the same rating was not 409
    answers: Counter[str] = field(default_factory=Counter)  # every attempt's outcome, all posts

    @property
    def must_count(self) -> dict[str, str]:
        return {**self.acknowledged, **self.acknowledged_by_conflict}


def sort_fates(records: Iterable[RatingRecord]) -> Fates:
    fates = Fates()
    for record in records:
        code = record.dossier_code
        for post in record.posts:
            fates.answers.update(a.outcome for a in post.attempts)
        dossier = record.post("dossier")
        if record.inline_dossier:
            dossier = record.post("rating")
        if dossier is not None and dossier.first("202") is not None:
            fates.dossiers_acknowledged.add(code)
        elif dossier is not None and any(a.outcome == NO_ANSWER for a in dossier.attempts):
            fates.dossiers_unknown.add(code)
        rating = record.post("rating")
        if rating is None:
            continue  # its dossier was never acknowledged, so the kiosk never rated
        accepted = [a for a in rating.attempts if a.outcome == "202"]
        resend = record.post("resend")
        if resend is not None:
            accepted += [a for a in resend.attempts if a.outcome == "202"]
        ids = {a.rating_id for a in accepted}
        if len(ids) > 1:
            fates.key_reanswered_differently.append(f"{code}: {sorted(i or '?' for i in ids)}")
        if accepted:
            first = accepted[0]
            if first.status == "pending_dossier" and code not in fates.dossiers_acknowledged:
                fates.pending[code] = first.rating_id or ""
            else:
                fates.acknowledged[code] = first.rating_id or ""
            press = record.post("second_press")
            if press is not None and not any(a.outcome == "409" and a.rating_id == first.rating_id for a in press.attempts):
                fates.second_press_counted.append(f"{code}: {[a.outcome for a in press.attempts]}")
            continue
        timed_out = any(a.outcome == NO_ANSWER for a in rating.attempts)
        conflict = next((a for a in rating.attempts if a.outcome == "409" and a.rating_id), None)
        if conflict is not None and timed_out:
            fates.acknowledged_by_conflict[code] = conflict.rating_id or ""
        elif timed_out:
            fates.unknown.add(code)
        elif any(a.outcome.startswith("5") for a in rating.attempts):
            fates.refused_5xx.add(code)
        else:
            fates.refused_otherwise.add(code)
    return fates


@dataclass
class TopicRating:
    rating_id: str
    dossier_code: str
    unit_code: str
    completed_at: datetime
    overall: str
    reasons: list[str]
    event_ids: set[str] = field(default_factory=set)
    copies: int = 0


def counted_ratings(events: Iterable[dict[str, Any]], run_prefix: str) -> dict[str, TopicRating]:
    """rating.accepted events of this run on ratings.v1, by rating id (a relay may publish a row twice)."""
    out: dict[str, TopicRating] = {}
    for event in events:
        data = event.get("data") or {}
        if event.get("type") != RATING_ACCEPTED or not str(data.get("dossier_code", "")).startswith(run_prefix):
            continue
        rating = out.get(data["rating_id"])
        if rating is None:
            rating = out[data["rating_id"]] = TopicRating(
                data["rating_id"], data["dossier_code"], data["unit_code"], datetime.fromisoformat(data["dossier_completed_at"]),
                data["overall"], list(data.get("reasons") or []),
            )
        rating.event_ids.add(event["id"])
        rating.copies += 1
    return out


def subjects(unit: str, parents: dict[str, str | None]) -> list[str]:
    """A unit and every ancestor: where one of its ratings counts."""
    chain, seen = [], set()
    current: str | None = unit
    while current is not None and current not in seen:
        chain.append(current)
        seen.add(current)
        current = parents.get(current)
    return chain


def expected_counts(moments: Iterable[tuple[str, datetime]], parents: dict[str, str | None]) -> Counter[tuple[str, str]]:
    """(unit, period) → how many, for items that count at `unit` (and its ancestors) in the periods of `moment`."""
    counts: Counter[tuple[str, str]] = Counter()
    for unit, moment in moments:
        for subject in subjects(unit, parents):
            for period in periods_containing(moment):
                counts[(subject, str(period))] += 1
    return counts


def check_counted_once(
    fates: Fates, topic: dict[str, TopicRating], cards: dict[tuple[str, str, str], dict[str, Any] | None],
    parents: dict[str, str | None], dossier_moments: dict[str, tuple[str, datetime]],
) -> Verdict:
    """Every acknowledged rating is on ratings.v1 under the id it was answered with, and scoring counts, per unit
    and period, exactly the distinct ratings on the topic (and the distinct dossiers on dossiers.v1)."""
    by_dossier = {r.dossier_code: r for r in topic.values()}
    must = fates.must_count
    missing = [f"{code} ({rid})" for code, rid in must.items() if code not in by_dossier]
    other_id = [f"{code}: answered {rid}, topic {by_dossier[code].rating_id}" for code, rid in must.items()
                if code in by_dossier and rid and by_dossier[code].rating_id != rid]
    twice = [f"{code}: rating ids {sorted(r.rating_id for r in topic.values() if r.dossier_code == code)}"
             for code, n in Counter(r.dossier_code for r in topic.values()).items() if n > 1]
    expected = expected_counts(((r.unit_code, r.completed_at) for r in topic.values()), parents)
    expected_dossiers = expected_counts(dossier_moments.values(), parents)
    compared, wrong = 0, []
    for (profile, unit, period), card in sorted(cards.items()):
        if profile != COUNTED_PROFILE:
            continue
        compared += 1
        ratings = card["ratings"] if card else 0
        dossiers = card["dossiers"] if card else 0
        want, want_dossiers = expected.get((unit, period), 0), expected_dossiers.get((unit, period), 0)
        if (ratings, dossiers) != (want, want_dossiers):
            wrong.append(f"{unit} {period}: scoring {ratings} ratings / {dossiers} dossiers, topic {want} / {want_dossiers}")
    unchecked = [key for key in expected if (COUNTED_PROFILE, *key) not in cards]
    problems = ([f"missing from ratings.v1: {m}" for m in missing] + [f"other rating id: {m}" for m in other_id]
                + [f"one dossier and channel counted twice: {m}" for m in twice] + wrong
                + [f"scoring not asked for {u} {p}" for u, p in unchecked]
                + [f"one Idempotency-Key, two answers: {m}" for m in fates.key_reanswered_differently]
                + [f"second press not refused: {m}" for m in fates.second_press_counted])
    copies = sum(r.copies - 1 for r in topic.values())
    numbers = {
        "acknowledged_202": len(fates.acknowledged), "acknowledged_409_after_timeout": len(fates.acknowledged_by_conflict),
        "on_topic": len(topic), "missing_from_topic": len(missing), "unit_periods_compared": compared,
        "unit_periods_wrong": len(wrong), "topic_duplicate_copies": copies,
        "ratings_counted_at_top_level": sum(v for (u, p), v in expected.items() if parents.get(u) is None and len(p) == 4),
        "resent_keys_answered_differently": len(fates.key_reanswered_differently),
        "second_presses_not_refused": len(fates.second_press_counted),
    }
    held = not problems and compared > 0
    summary = (f"{len(must):,} acknowledged ratings, all on ratings.v1 once; scoring's counts equal the topic's in "
               f"{compared - len(wrong)}/{compared} unit-periods" if held else
               f"{len(missing)} acknowledged ratings missing, {len(wrong)}/{compared} unit-periods miscounted, "
               f"{len(twice)} dossiers counted twice")
    if copies:
        summary += f"; {copies} duplicate record(s) on the topic, each applied once"
    return Verdict("every 202 counted exactly once", held, summary, numbers, problems)


def check_refused_not_counted(fates: Fates, topic: dict[str, TopicRating]) -> Verdict:
    """Nothing refused (answered 5xx, or never received) and never acknowledged later was counted."""
    counted = {r.dossier_code for r in topic.values()}
    bad_5xx = sorted(fates.refused_5xx & counted)
    bad_other = sorted(fates.refused_otherwise & counted)
    unknown_counted = len(fates.unknown & counted)
    pending_counted = sorted(set(fates.pending) & counted)
    problems = [f"answered 5xx, counted: {c}" for c in bad_5xx] + [f"refused, counted: {c}" for c in bad_other] + [
        f"held pending without its dossier, counted: {c}" for c in pending_counted]
    numbers = {
        "refused_with_5xx": len(fates.refused_5xx), "refused_without_5xx": len(fates.refused_otherwise),
        "counted_of_those": len(bad_5xx) + len(bad_other), "unknown_outcome": len(fates.unknown),
        "unknown_counted": unknown_counted, "pending_without_dossier": len(fates.pending),
        "answers_5xx": sum(n for outcome, n in fates.answers.items() if outcome.startswith("5")),
        "answers_500": fates.answers.get("500", 0),
    }
    held = not problems
    summary = (f"{len(fates.refused_5xx)} ratings answered 5xx and given up, {len(fates.refused_otherwise)} refused "
               f"otherwise: none counted; {len(fates.unknown)} without an answer ({unknown_counted} counted, "
               f"{len(fates.unknown) - unknown_counted} not — either is right)")
    if not held:
        summary = f"{len(bad_5xx)} answered 5xx and {len(bad_other)} refused were counted"
    return Verdict("nothing answered 5xx was counted", held, summary, numbers, problems)


def check_targets_newest(
    cards: dict[tuple[str, str, str], dict[str, Any] | None], held_by_target: dict[str, dict[tuple[str, str, str], Any]],
    target_summaries: dict[str, dict[str, Any]], dead_deliveries: int, profiles: dict[str, str],
) -> Verdict:
    """Each target holds, for every unit and period scoring has a figure of its profile, that figure's newest
    version (with the same rating count); nothing was dead-lettered, badly signed or sent out of order."""
    problems: list[str] = []
    compared = 0
    for target, profile in profiles.items():
        held = held_by_target[target]
        wanted = {(unit, period): card for (p, unit, period), card in cards.items() if p == profile and card}
        for (unit, period), card in sorted(wanted.items()):
            compared += 1
            there = held.get((unit, period, "live"))
            if there is None:
                problems.append(f"{target}: no {unit} {period} (scoring v{card['version']})")
            elif there.version != card["version"] or there.body.get("ratings") != card["ratings"]:
                problems.append(f"{target}: {unit} {period} holds v{there.version} ({there.body.get('ratings')} ratings), "
                                f"scoring v{card['version']} ({card['ratings']})")
        extra = sorted(k for k in held if (k[0], k[1]) not in wanted)
        problems += [f"{target}: holds {u} {p} {e}, which scoring has no figure for" for u, p, e in extra]
        summary = target_summaries[target]
        for name in ("bad_signatures", "bad_tokens", "stale_pushes", "key_conflicts"):
            if summary.get(name):
                problems.append(f"{target}: {summary[name]} {name.replace('_', ' ')}")
    if dead_deliveries:
        problems.append(f"publisher: {dead_deliveries} deliveries dead-lettered")
    numbers = {"results_compared": compared, "wrong_or_missing": len(problems), "dead_deliveries": dead_deliveries,
               **{f"{t}_requests": s.get("requests", 0) for t, s in target_summaries.items()},
               **{f"{t}_failures_injected": sum(n for code, n in s.get("statuses", {}).items() if int(code) >= 500)
                  for t, s in target_summaries.items()}}
    held_all = not problems and compared > 0
    summary = (f"map and portal hold scoring's newest version of all {compared} unit-periods" if held_all
               else f"{len(problems)} problem(s) among {compared} unit-periods")
    return Verdict("the map holds the newest version", held_all, summary, numbers, problems)


def check_one_ticket_per_cause(
    tickets: list[dict[str, Any]], subject_refs: dict[str, str | None], topic: dict[str, TopicRating],
    late_dossiers: set[str],
) -> Verdict:
    """One ticket per cause — a rating ticket per unit, category and month; an apology letter per late dossier;
    one unit plan per unit at a time — each cause that should have one has it, and each counted rating with
    remedies is attached once to its ticket of each category."""
    by_cause: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for ticket in tickets:
        if ticket["source"] == "rating":
            cause: tuple[str, ...] = ("rating", ticket["unit_code"], ticket["category"], ticket["period"])
        elif ticket["category"] == APOLOGY_LETTER:
            cause = ("apology", subject_refs.get(ticket["id"]) or ticket["id"])
        elif ticket["category"] == UNIT_PLAN:
            if ticket["status"] not in DEADLINE_STATUSES:
                continue  # one plan at a time: a closed one does not count
            cause = ("unit_plan", ticket["unit_code"])
        else:
            cause = (ticket["category"], subject_refs.get(ticket["id"]) or ticket["id"])
        by_cause[cause].append(ticket)
    twice = {cause: found for cause, found in by_cause.items() if len(found) > 1}
    attached: Counter[tuple[str, ...]] = Counter()
    for rating in topic.values():
        month = str(periods_containing(rating.completed_at)[0])
        for remedy in remedies_for(rating.overall, rating.reasons):
            attached[("rating", rating.unit_code, remedy.category, month)] += 1
    rating_causes = {c for c in by_cause if c[0] == "rating"}
    missing = sorted(set(attached) - rating_causes)
    unexpected = sorted(rating_causes - set(attached))
    miscounted = [f"{' '.join(c[1:])}: {sum(t.get('rating_count', 0) for t in by_cause[c])} ratings attached, {n} counted"
                  for c, n in sorted(attached.items()) if c in by_cause and sum(t.get("rating_count", 0) for t in by_cause[c]) != n]
    apologies = {c[1] for c in by_cause if c[0] == "apology"}
    problems = ([f"two tickets for {' '.join(c)}: {[t['id'] for t in found]}" for c, found in twice.items()]
                + [f"no ticket for {' '.join(c[1:])}" for c in missing]
                + [f"ticket without a counted rating: {' '.join(c[1:])}" for c in unexpected] + miscounted
                + [f"no apology letter for late dossier {d}" for d in sorted(late_dossiers - apologies)]
                + [f"apology letter for a dossier not late: {d}" for d in sorted(apologies - late_dossiers)])
    numbers = {
        "tickets": len(tickets), "rating_tickets": len(rating_causes), "apology_letters": len(apologies),
        "unit_plans": sum(1 for c in by_cause if c[0] == "unit_plan"), "causes_with_two_tickets": len(twice),
        "ratings_attached": sum(attached.values()),
    }
    held = not problems and bool(tickets)
    summary = (f"{len(tickets)} tickets, one per cause ({len(rating_causes)} rating causes with "
               f"{sum(attached.values())} attachments, {len(apologies)} apology letters, {numbers['unit_plans']} unit plans)"
               if held else f"{len(twice)} causes with two tickets, {len(missing)} missing, {len(miscounted)} miscounted")
    return Verdict("no ticket opened twice for one cause", held, summary, numbers, problems)


def check_dlqs_empty(dead_lettered: dict[str, int]) -> Verdict:
    full = {topic: n for topic, n in dead_lettered.items() if n}
    numbers = {"dlq_topics": len(dead_lettered), "records": sum(full.values())}
    summary = f"all {len(dead_lettered)} DLQs empty" if not full else ", ".join(f"{t}: {n}" for t, n in sorted(full.items()))
    return Verdict("every DLQ is empty", not full, summary, numbers, [f"{t}: {n} records" for t, n in sorted(full.items())])


def late(completed_at: datetime, due_at: datetime) -> bool:
    """Late means completed on a later day than due (Việt Nam time), as workflow judges it."""
    return local_time(completed_at).date() > local_time(due_at).date()
