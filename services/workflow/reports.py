"""The reports behind the reporting obligations, generated as XLSX (openpyxl) from workflow's own data."""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from shared.periods import local_time

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return local_time(value).replace(tzinfo=None)  # Excel has no time zones: shown in Việt Nam's time
    return value


def workbook(title: str, about: Sequence[tuple[str, Any]], header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    """One sheet: a title, a few labelled facts, then a table with a bold header and sized columns."""
    book = Workbook()
    sheet = book.active
    sheet.title = title[:31]
    sheet.append([title])
    sheet["A1"].font = Font(bold=True, size=14)
    for label, value in about:
        sheet.append([label, _cell(value)])
    sheet.append([])
    sheet.append(list(header))
    header_row = sheet.max_row
    for cell in sheet[header_row]:
        cell.font = Font(bold=True)
    widths = [len(h) for h in header]
    for row in rows:
        values = [_cell(v) for v in row]
        sheet.append(values)
        widths = [max(w, len(str(v)) if v is not None else 0) for w, v in zip(widths, values, strict=False)]
    for index, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = min(60, max(10, width + 2))
    sheet.freeze_panes = sheet.cell(row=header_row + 1, column=1)
    for row in sheet.iter_rows(min_row=header_row + 1):
        for cell in row:
            if isinstance(cell.value, datetime):
                cell.number_format = "yyyy-mm-dd hh:mm"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


TICKET_HEADER = ("ticket", "unit", "category", "severity", "opened", "due", "status", "breached", "resolved",
                 "resolved on time", "ratings", "measures")
ANNUAL_HEADER = ("unit", "tickets", "resolved on time", "resolved late", "breached", "escalated", "still open",
                 "phúc tra done", "found not genuine", "late dossiers (apology letters)")
RANKING_HEADER = ("rank", "unit", "unit name", "score", "band")
