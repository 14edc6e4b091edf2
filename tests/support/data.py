"""Request bodies shaped like the contract's examples."""

from __future__ import annotations

import uuid
from typing import Any


def dossier(unit_code: str = "79.SNV", code: str | None = None, completed_at: str = "2026-11-18T10:00:00+07:00", **changes: Any) -> dict[str, Any]:
    body = {
        "dossier_code": code or f"H29.58-261118-{uuid.uuid4().hex[:8]}",
        "unit_code": unit_code,
        "procedure_code": "1.004227",
        "procedure_name": "Cấp giấy phép xây dựng",
        "channel": "in_person",
        "received_at": "2026-11-10T08:00:00+07:00",
        "due_at": "2026-11-19T17:00:00+07:00",
        "completed_at": completed_at,
        "supplement_requests": 0,
        "officer_ids": [f"{unit_code}.CB0012"],
        "result": "approved",
    }
    body.update(changes)
    return body


def rating(dossier_code: str, overall: str = "satisfied", **changes: Any) -> dict[str, Any]:
    body = {
        "dossier_code": dossier_code,
        "channel": "kiosk",
        "device_id": "KIOSK-79-SNV-01",
        "submitted_at": "2026-11-18T10:02:10+07:00",
        "overall": overall,
        "attitude": "good",
        "criteria": {"access": 5, "procedure": 4, "officer": 5, "result": 5, "feedback": 4},
        "reasons": [],
        "comment": "",
        "respondent": {"phone": "+84901234567"},
    }
    body.update(changes)
    return body


UNITS = [
    ("79", {"name": "Thành phố Hồ Chí Minh", "level": "province"}),
    ("79.SNV", {"name": "Sở Nội vụ Thành phố Hồ Chí Minh", "level": "department", "parent_code": "79"}),
]
