"""Rankings as CSV (UTF-8 with a byte-order mark, so spreadsheet programs read Vietnamese names) and XLSX."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from openpyxl import Workbook

COLUMNS = ("list", "rank", "unit_code", "unit_name", "score", "max_score", "band", "ratings", "dossiers", "rank_change", "sample_size")


def component_names(items: Sequence[dict[str, Any]]) -> list[str]:
    names: list[str] = []
    for item in items:
        for name, value in (item.get("components") or {}).items():
            if isinstance(value, dict) and "value" in value and name not in names:
                names.append(name)
    return names


def table(ranking: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """One header and one row per unit: the final ranking, then provisional, then insufficient data."""
    lists = [("final", ranking["items"]), ("provisional", ranking.get("provisional", [])), ("insufficient_data", ranking.get("insufficient_data", []))]
    every = [item for _, items in lists for item in items]
    components = component_names(every)
    header = [*COLUMNS, *components]
    rows = []
    for name, items in lists:
        for item in items:
            values = [name if c == "list" else item.get(c) for c in COLUMNS]
            values += [(item.get("components") or {}).get(c, {}).get("value") for c in components]
            rows.append(values)
    return header, rows


def to_csv(ranking: dict[str, Any]) -> bytes:
    header, rows = table(ranking)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(["" if v is None else v for v in row] for row in rows)
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def to_xlsx(ranking: dict[str, Any]) -> bytes:
    header, rows = table(ranking)
    book = Workbook(write_only=True)
    sheet = book.create_sheet(title=f"{ranking['profile']} {ranking['period']}"[:31])
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
