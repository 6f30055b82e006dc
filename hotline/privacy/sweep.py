"""The erasure's safety net: a resident's phone numbers, WeChat and web-chat ids and longer sentences
removed from every text column of every table, wherever a copy of them landed.

The targeted erasure (erase.py) knows where these live; the sweep finds the copies nobody planned
for (a phone typed into a ticket note, an openid in a 12345 payload, a table added later). The
database does the search (LIKE on each text and JSON column, JSON as its stored text); only the
matching rows come back, and each is rewritten in a short transaction. Words shorter than
`MIN_WORDS` characters are not searched for: a common phrase would be cut out of other residents'
records too.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import JSON, String, Table, Text, cast, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from hotline.context import AppContext
from models.base import Base

MIN_WORDS = 12  # characters: a resident's sentence this long is theirs, not a phrase everyone writes
SKIP_TABLES = frozenset({"privacy_runs", "staff", "staff_sessions", "alembic_version"})
BATCH = 200


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _forms(needle: str) -> set[str]:
    """The needle as text, and as it appears inside stored JSON (non-ASCII escaped as \\uXXXX)."""
    return {needle, json.dumps(needle)[1:-1]}


def _scrub(value: Any, needles: list[str]) -> Any:
    if isinstance(value, str):
        for needle in needles:
            value = value.replace(needle, "")
        return value
    if isinstance(value, list):
        return [_scrub(v, needles) for v in value]
    if isinstance(value, dict):
        return {_scrub(k, needles): _scrub(v, needles) for k, v in value.items()}
    return value


def _text_columns(table: Table) -> list[Any]:
    return [c for c in table.columns if isinstance(c.type, String | Text | JSON) and not c.primary_key]


def needles_of(identifiers: Iterable[str], sentences: Iterable[str]) -> list[str]:
    """Longest first, so a sentence is removed before a phone inside it."""
    found = {i for i in identifiers if i and len(i) >= 5}
    found |= {s.strip() for s in sentences if s and len(s.strip()) >= MIN_WORDS}
    return sorted(found, key=len, reverse=True)


async def sweep(ctx: AppContext, needles: list[str]) -> dict[str, int]:
    """Remove every needle from every text column; rows changed per table."""
    if not needles:
        return {}
    changed: dict[str, int] = {}
    for table in Base.metadata.sorted_tables:
        columns = _text_columns(table)
        if table.name in SKIP_TABLES or not columns or not table.primary_key.columns:
            continue
        pk = list(table.primary_key.columns)
        matches: list[ColumnElement[bool]] = []
        for column in columns:
            as_text = cast(column, Text) if isinstance(column.type, JSON) else column
            for needle in needles:
                for form in _forms(needle):
                    matches.append(as_text.like(f"%{_escape(form)}%", escape="\\"))
        async with ctx.readers() as session:
            rows = (await session.execute(select(*pk, *columns).where(or_(*matches)))).all()
        for start in range(0, len(rows), BATCH):
            async with ctx.sessions.begin() as session:
                for row in rows[start:start + BATCH]:
                    keys, values = row[:len(pk)], row[len(pk):]
                    new = {c.key: _scrub(v, needles) for c, v in zip(columns, values, strict=True)}
                    new = {k: v for (k, v), old in zip(new.items(), values, strict=True) if v != old}
                    if new:
                        await session.execute(update(table).where(
                            *(c == k for c, k in zip(pk, keys, strict=True))).values(**new))
        if rows:
            changed[table.name] = len(rows)
    return changed
