"""Paper forms keyed in as CSV: Vietnamese headers and answers as operators write them."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.intake.domain.paper import RowError, fold, read_forms, submitted_at

NOW = datetime(2026, 11, 25, 3, 0, tzinfo=timezone.utc)


def test_headers_and_answers_without_diacritics_or_in_english_are_the_same_form() -> None:
    vietnamese = "Mã hồ sơ,Ngày khảo sát,Mức độ hài lòng,Thái độ,Lý do,Ý kiến khác\nH1,18/11/2026,Rất không hài lòng,Không tốt,Chi phí ngoài quy định; Thái độ,Ồn\n"
    plain = "ma ho so,ngay khao sat,muc do hai long,thai do,ly do,y kien khac\nH1,18/11/2026,rat khong hai long,khong tot,chi phi ngoai quy dinh;thai do,Ồn\n"
    english = "dossier_code,submitted_at,overall,attitude,reasons,comment\nH1,2026-11-18T23:59:59+07:00,very_dissatisfied,bad,informal_cost;attitude,Ồn\n"
    forms = [list(read_forms(text, NOW)) for text in (vietnamese, plain, english)]
    assert forms[0] == forms[1] == forms[2]
    assert forms[0][0][1]["reasons"] == ["informal_cost", "attitude"] and forms[0][0][1]["channel"] == "paper"


def test_a_form_dated_today_is_not_in_the_future() -> None:
    assert submitted_at("25/11/2026", NOW) == NOW  # 10:00 in Việt Nam, not 23:59:59
    assert submitted_at("18/11/2026", NOW).isoformat() == "2026-11-18T23:59:59+07:00"
    with pytest.raises(RowError):
        submitted_at("2026-11-18T10:00:00", NOW)  # a time without its offset


def test_bad_rows_are_reported_with_their_line_and_column() -> None:
    text = "Mã hồ sơ,Ngày khảo sát,Mức độ hài lòng,Tiếp cận dịch vụ\nH1,18/11/2026,Hài lòng,7\nH2,18/11/2026,Hài lòng,4\n\nH3,32/13/2026,Hài lòng,\n"
    report = list(read_forms(text, NOW))
    assert [(line, getattr(result, "field", None)) for line, result in report] == [(2, "access"), (3, None), (5, "submitted_at")]
    with pytest.raises(RowError):
        list(read_forms("name,age\nx,1\n", NOW))


def test_fold_strips_vietnamese_marks() -> None:
    assert fold("Sự phục vụ của công chức") == "su phuc vu cua cong chuc"
    assert fold("ĐƯỢC") == "duoc"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_any_text_is_read_or_refused_with_a_row_error(text: str) -> None:
    try:
        for _line, result in read_forms("Mã hồ sơ,Ngày khảo sát,Mức độ hài lòng\n" + text, NOW):
            assert isinstance(result, (dict, RowError))
    except RowError:
        pass
