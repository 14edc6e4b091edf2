"""Paper survey forms keyed in as CSV (Đà Nẵng 5697/2017 Art. 2): Vietnamese or English headers and answers,
turned into rating bodies — pure, so every spelling the operators use is tested without a server.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Iterator
from datetime import datetime, time, timezone
from typing import Any
from zoneinfo import ZoneInfo

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")
MAX_ROWS = 10_000


def fold(text: str) -> str:
    """Lower case without Vietnamese diacritics or punctuation: 'Mức độ hài lòng' → 'muc do hai long'."""
    text = text.replace("đ", "d").replace("Đ", "D")
    stripped = "".join(ch for ch in unicodedata.normalize("NFD", text) if unicodedata.category(ch) != "Mn")
    cleaned = "".join(ch if ch.isalnum() else " " for ch in stripped.lower())
    return " ".join(cleaned.split())


# Header spellings (folded) → field of the rating body.
HEADERS: dict[str, str] = {
    "dossier code": "dossier_code", "dossier_code": "dossier_code", "ma ho so": "dossier_code", "so ho so": "dossier_code",
    "submitted at": "submitted_at", "submitted_at": "submitted_at", "ngay khao sat": "submitted_at",
    "thoi gian khao sat": "submitted_at", "ngay danh gia": "submitted_at", "thoi gian": "submitted_at",
    "overall": "overall", "muc do hai long": "overall", "danh gia chung": "overall", "hai long": "overall",
    "attitude": "attitude", "thai do": "attitude", "thai do can bo": "attitude", "thai do cong chuc": "attitude",
    "access": "access", "tiep can dich vu": "access",
    "procedure": "procedure", "thu tuc hanh chinh": "procedure",
    "officer": "officer", "su phuc vu cua cong chuc": "officer", "phuc vu cua cong chuc": "officer",
    "result": "result", "ket qua giai quyet cong viec": "result", "ket qua giai quyet": "result",
    "feedback": "feedback", "tiep nhan xu ly y kien gop y phan anh kien nghi": "feedback", "tiep nhan xu ly y kien": "feedback",
    "reasons": "reasons", "ly do": "reasons", "ly do khong hai long": "reasons",
    "comment": "comment", "y kien khac": "comment", "gop y": "comment", "y kien": "comment",
    "phone": "phone", "so dien thoai": "phone", "dien thoai": "phone",
    "id number": "id_number", "id_number": "id_number", "so cccd": "id_number", "so dinh danh": "id_number", "cccd": "id_number",
}
CRITERIA = ("access", "procedure", "officer", "result", "feedback")

OVERALL: dict[str, str] = {
    "rat hai long": "very_satisfied", "hai long": "satisfied", "binh thuong": "normal",
    "khong hai long": "dissatisfied", "rat khong hai long": "very_dissatisfied",
    "very satisfied": "very_satisfied", "satisfied": "satisfied", "normal": "normal",
    "dissatisfied": "dissatisfied", "very dissatisfied": "very_dissatisfied",
}
ATTITUDE: dict[str, str] = {
    "tot": "good", "binh thuong": "normal", "khong tot": "bad", "kem": "bad", "chua tot": "bad",
    "good": "good", "normal": "normal", "bad": "bad",
}
REASONS: dict[str, str] = {
    "co so vat chat": "equipment", "trang thiet bi": "equipment", "equipment": "equipment",
    "chi phi ngoai quy dinh": "informal_cost", "phi ngoai quy dinh": "informal_cost", "informal cost": "informal_cost",
    "thai do": "attitude", "attitude": "attitude",
    "thu tuc": "procedure", "quy trinh": "procedure", "procedure": "procedure",
    "thanh phan ho so": "documents", "giay to": "documents", "documents": "documents",
    "thoi gian giai quyet": "processing_time", "tre han": "processing_time", "processing time": "processing_time",
    "khac": "other", "other": "other",
}


class RowError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _answer(table: dict[str, str], value: str, field: str) -> str | None:
    if not value.strip():
        return None
    folded = fold(value)
    if folded in table:
        return table[folded]
    normalised = value.strip().lower()
    if normalised in table.values():
        return normalised
    raise RowError(field, f"{value!r} is not one of {', '.join(sorted(set(table.values())))}")


def submitted_at(value: str, now: datetime) -> datetime:
    """ISO 8601 with offset, or a form's date dd/mm/yyyy (taken as the end of that day in Việt Nam, or now
    if that is still to come: the form was filled in that day, after the result was handed over)."""
    text = value.strip()
    if not text:
        raise RowError("submitted_at", "missing")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is not None:
        if moment.tzinfo is None:
            raise RowError("submitted_at", "a time needs its offset, e.g. +07:00")
        return moment
    for pattern in ("%d/%m/%Y", "%d-%m-%Y", "%Y-%m-%d"):
        try:
            day = datetime.strptime(text, pattern).date()
            break
        except ValueError:
            continue
    else:
        raise RowError("submitted_at", f"{value!r} is neither dd/mm/yyyy nor an ISO 8601 time")
    end_of_day = datetime.combine(day, time(23, 59, 59), VIETNAM)
    return min(end_of_day, now.astimezone(VIETNAM))


def rating_body(row: dict[str, str], now: datetime) -> dict[str, Any]:
    """One form → the body of POST /v1/ratings (channel `paper`); RowError names the bad column."""
    body: dict[str, Any] = {"channel": "paper", "dossier_code": row.get("dossier_code", "").strip()}
    body["submitted_at"] = submitted_at(row.get("submitted_at", ""), now).isoformat()
    body["overall"] = _answer(OVERALL, row.get("overall", ""), "overall")
    if body["overall"] is None:
        raise RowError("overall", "missing")
    attitude = _answer(ATTITUDE, row.get("attitude", ""), "attitude")
    if attitude:
        body["attitude"] = attitude
    criteria: dict[str, int] = {}
    for name in CRITERIA:
        value = row.get(name, "").strip()
        if value:
            if not value.isdigit() or not 1 <= int(value) <= 5:
                raise RowError(name, f"{value!r} is not a score from 1 to 5")
            criteria[name] = int(value)
    if criteria:
        body["criteria"] = criteria
    reasons = [r for part in row.get("reasons", "").replace(",", ";").split(";") if (r := _answer(REASONS, part, "reasons"))]
    if reasons:
        body["reasons"] = list(dict.fromkeys(reasons))
    if row.get("comment", "").strip():
        body["comment"] = row["comment"].strip()
    respondent = {k: row[k].strip() for k in ("phone", "id_number") if row.get(k, "").strip()}
    if respondent:
        body["respondent"] = respondent
    return body


def _rows(reader: Iterator[list[str]]) -> Iterator[list[str]]:
    """The CSV's rows; a malformed file (e.g. a stray carriage return) is a RowError naming its line."""
    line = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise RowError("rows", f"unreadable CSV after line {line + 1}: {exc}") from None
        line += 1
        yield row


def read_forms(text: str, now: datetime | None = None) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    """(line number, rating body or the row's error) for each form; a header naming no known column is an error."""
    now = now or datetime.now(timezone.utc)
    reader = _rows(csv.reader(io.StringIO(text.lstrip("\ufeff"), newline="")))
    header = next(reader, None)
    if not header:
        raise RowError("header", "the CSV is empty")
    columns = [HEADERS.get(fold(name)) or HEADERS.get(name.strip().lower()) for name in header]
    if "dossier_code" not in columns or "overall" not in columns:
        raise RowError("header", "the header must name at least the dossier code (Mã hồ sơ) and the overall answer (Mức độ hài lòng)")
    for count, values in enumerate(reader, start=1):
        line = count + 1
        if count > MAX_ROWS:
            raise RowError("rows", f"more than {MAX_ROWS} forms in one file; split it")
        if not any(v.strip() for v in values):
            continue
        row = {column: value for column, value in zip(columns, values) if column}
        try:
            yield line, rating_body(row, now)
        except RowError as error:
            yield line, error

