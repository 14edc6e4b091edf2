"""UtcDateTime's own SQLite converters write exactly the text SQLAlchemy's DATETIME writes (rows stored before them,
and SQLite's text comparisons in WHERE clauses, depend on it) and read back the same instant."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from shared.db import UtcDateTime

DIALECT = sqlite.dialect()
HANOI = timezone(timedelta(hours=7))
MOMENTS = [
    datetime(2026, 11, 18, 10, 2, 10, tzinfo=HANOI),  # whole seconds: SQLAlchemy still writes .000000
    datetime(2026, 11, 18, 10, 2, 10, 5, tzinfo=HANOI),
    datetime(2000, 1, 1, 0, 0, 0, 999999, tzinfo=timezone.utc),
    datetime(2026, 1, 1, 3, 0, tzinfo=HANOI),  # the UTC date is the day before
    datetime(999, 12, 31, 23, 59, 59, tzinfo=timezone.utc),  # a year below 1000 is still zero-padded
]


def _sqlalchemys_text(moment: datetime) -> str:
    """The reference: SQLAlchemy's own conversion, through the type UtcDateTime decorates."""
    reference = sa.DateTime().dialect_impl(DIALECT).bind_processor(DIALECT)
    assert reference is not None
    return reference(moment.astimezone(timezone.utc).replace(tzinfo=None))


@pytest.mark.parametrize("moment", MOMENTS)
def test_stored_text_is_sqlalchemys(moment: datetime) -> None:
    to_text = UtcDateTime().bind_processor(DIALECT)
    assert to_text is not None
    assert to_text(moment) == _sqlalchemys_text(moment)


@pytest.mark.parametrize("moment", MOMENTS)
def test_read_back_as_the_same_instant_in_utc(moment: datetime) -> None:
    from_text = UtcDateTime().result_processor(DIALECT, None)
    assert from_text is not None
    read = from_text(_sqlalchemys_text(moment))
    assert read == moment and read.utcoffset() == timedelta(0)


def test_text_written_by_sqlite_itself_is_read() -> None:
    # CURRENT_TIMESTAMP and strftime defaults write no fraction.
    from_text = UtcDateTime().result_processor(DIALECT, None)
    assert from_text is not None
    assert from_text("2026-12-05 11:20:38") == datetime(2026, 12, 5, 11, 20, 38, tzinfo=timezone.utc)
    assert from_text(None) is None


def test_naive_datetimes_are_refused() -> None:
    to_text = UtcDateTime().bind_processor(DIALECT)
    assert to_text is not None
    with pytest.raises(ValueError, match="naive datetime"):
        to_text(datetime(2026, 11, 18, 10, 2, 10))
    assert to_text(None) is None
