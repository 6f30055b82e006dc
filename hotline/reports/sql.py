"""The few SQL expressions that differ between SQLite and PostgreSQL, so the reports' queries are written once.

SQLite keeps UTC as naive text and has no time zones: local days and hours are taken with a fixed
offset (the configured zone's offset at the start of the range; Asia/Shanghai has no summer time).
PostgreSQL converts with the zone itself.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Float, Integer, case, cast, func, literal_column, select
from sqlalchemy.sql.elements import ColumnElement


class Dialect:
    """Expression builders for one backend and one time zone."""

    def __init__(self, name: str, timezone: dt.tzinfo, at: dt.datetime) -> None:
        self.name = name
        self.timezone = timezone
        offset = at.astimezone(timezone).utcoffset() or dt.timedelta()
        self.offset_minutes = int(offset.total_seconds() // 60)
        self.zone_name = str(timezone)

    @property
    def postgres(self) -> bool:
        return self.name == "postgresql"

    def _local(self, column: Any) -> Any:
        return func.timezone(self.zone_name, column)

    def local_day(self, column: Any) -> ColumnElement[str]:
        """The local calendar day as 'YYYY-MM-DD'."""
        if self.postgres:
            return func.to_char(self._local(column), "YYYY-MM-DD")
        return func.strftime("%Y-%m-%d", column, f"{self.offset_minutes:+d} minutes")

    def local_hour(self, column: Any) -> ColumnElement[int]:
        if self.postgres:
            return cast(func.date_part("hour", self._local(column)), Integer)
        return cast(func.strftime("%H", column, f"{self.offset_minutes:+d} minutes"), Integer)

    def seconds(self, start: Any, end: Any) -> ColumnElement[float]:
        """end - start in seconds (NULL when either is)."""
        if self.postgres:
            return cast(func.date_part("epoch", end) - func.date_part("epoch", start), Float)
        return (func.julianday(end) - func.julianday(start)) * 86400.0

    def json_text(self, column: Any, key: str) -> ColumnElement[str]:
        """A top-level member of a JSON object column, as text."""
        if self.postgres:
            return column.op("->>")(literal_column(f"'{key}'"))
        return func.json_extract(column, f"$.{key}")

    def json_last(self, column: Any) -> ColumnElement[str]:
        """The last element of a JSON array column, as text (NULL for an empty array)."""
        if self.postgres:
            return column.op("->>")(literal_column("-1"))
        return func.json_extract(column, "$[#-1]")


def rate(numerator: int, denominator: int) -> float | None:
    """A share rounded for display; None (not 0) when there is nothing to divide by."""
    return round(numerator / denominator, 4) if denominator else None


def percentiles(key: Any, value: Any, where: list[Any]) -> Any:
    """Per `key`: count, median and p90 of `value` by nearest rank, in SQL (window functions on both backends).

    The ranks are ceil(n/2) and ceil(9n/10), written with integer division because SQLite
    has no ceil() in the builds Python ships.
    """
    inner = select(key.label("k"), value.label("v"),
                   func.row_number().over(partition_by=key, order_by=value).label("rn"),
                   func.count().over(partition_by=key).label("n")).where(value.is_not(None), *where).subquery()
    return select(inner.c.k, func.max(inner.c.n),
                  func.max(case((inner.c.rn == (inner.c.n + 1) // 2, inner.c.v))),
                  func.max(case((inner.c.rn == (inner.c.n * 9 + 9) // 10, inner.c.v)))).group_by(inner.c.k)
