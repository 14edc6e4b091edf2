"""Reporting obligations and their statutory dates — pure.

- each unit reports on its remedies before 15 June and 15 December (Đà Nẵng 5697/2017 Art. 3.3);
- Home Affairs reports the year's results to the People's Committee before 30 January (Art. 3.6);
- the monthly ranking goes to the People's Committee before the 25th of the next month (HCMC 104/2024 Art. 15).
"Before D" is read literally: the report must be in before D begins (00:00, Asia/Ho_Chi_Minh).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time

from shared.periods import VIETNAM, Period, local_time, parse_period

UNIT_REMEDIATION_REPORT = "unit_remediation_report"
ANNUAL_REPORT = "annual_report"
MONTHLY_RANKING_REPORT = "monthly_ranking_report"
KINDS = (UNIT_REMEDIATION_REPORT, ANNUAL_REPORT, MONTHLY_RANKING_REPORT)
PROVINCE_WIDE = "*"  # the scope of obligations that belong to no single unit
RESPONSIBLE = {UNIT_REMEDIATION_REPORT: "unit_head", ANNUAL_REPORT: "home_affairs", MONTHLY_RANKING_REPORT: "home_affairs"}


@dataclass(frozen=True)
class Obligation:
    kind: str
    scope: str  # a unit code, or PROVINCE_WIDE
    period: str  # what the report covers: 2026-H1, 2026, 2026-11
    due_at: datetime  # the report must be in before this moment


def _before(day: date) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=VIETNAM)


def remediation_report_for(unit_code: str, opened_at: datetime) -> Obligation:
    """The unit report that must cover a ticket opened at `opened_at`: the next of 15 June / 15 December."""
    opened = local_time(opened_at).date()
    if opened < date(opened.year, 6, 15):
        return Obligation(UNIT_REMEDIATION_REPORT, unit_code, f"{opened.year}-H1", _before(date(opened.year, 6, 15)))
    if opened < date(opened.year, 12, 15):
        return Obligation(UNIT_REMEDIATION_REPORT, unit_code, f"{opened.year}-H2", _before(date(opened.year, 12, 15)))
    return Obligation(UNIT_REMEDIATION_REPORT, unit_code, f"{opened.year + 1}-H1", _before(date(opened.year + 1, 6, 15)))


def annual_report(year: int) -> Obligation:
    return Obligation(ANNUAL_REPORT, PROVINCE_WIDE, str(year), _before(date(year + 1, 1, 30)))


def monthly_ranking_report(month: Period) -> Obligation:
    if month.kind != "month":
        raise ValueError(f"{month} is not a month")
    year, index = (month.year + 1, 1) if month.index == 12 else (month.year, month.index + 1)
    return Obligation(MONTHLY_RANKING_REPORT, PROVINCE_WIDE, str(month), _before(date(year, index, 25)))


def province_obligations_around(now: datetime) -> list[Obligation]:
    """The province-wide reports that exist by `now`: last year's annual report, last and this month's rankings."""
    local = local_time(now)
    this_month = parse_period(f"{local.year}-{local.month:02d}")
    last_month = parse_period(f"{local.year - 1}-12") if local.month == 1 else parse_period(f"{local.year}-{local.month - 1:02d}")
    return [annual_report(local.year - 1), monthly_ranking_report(last_month), monthly_ranking_report(this_month)]


def status_of(due_at: datetime, submitted_at: datetime | None, now: datetime) -> str:
    """met | met_late | overdue | pending."""
    if submitted_at is not None:
        return "met" if submitted_at < due_at else "met_late"
    return "overdue" if now >= due_at else "pending"


def remediation_report_window(period: str) -> tuple[datetime, datetime]:
    """The tickets a unit report covers: opened from the previous report's date up to its own."""
    year, half = int(period[:4]), period[5:]
    if half == "H1":
        return _before(date(year - 1, 12, 15)), _before(date(year, 6, 15))
    if half == "H2":
        return _before(date(year, 6, 15)), _before(date(year, 12, 15))
    raise ValueError(f"a remediation report covers a half-year like 2026-H1, not {period!r}")


def competition_ranks(scores: list[float]) -> list[int]:
    """Ranks of scores sorted best first; ties share a rank and the next rank skips (1, 2, 2, 4)."""
    ranks: list[int] = []
    for index, score in enumerate(scores):
        ranks.append(ranks[-1] if index and score == scores[index - 1] else index + 1)
    return ranks
