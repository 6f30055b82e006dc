"""One thread hop per SQLite statement instead of four.

SQLAlchemy's aiosqlite adapter awaits aiosqlite for each of cursor(),
execute(), fetchall() and close(): four trips to aiosqlite's worker thread per
statement. On a 2-core VM a trip costs 0.2-0.3 ms while the statement itself
costs microseconds, so a ticket create (about seven statements) spent 90 % of
its time waiting for thread wake-ups (bench/tickets_bench.py: 78 creates/s).
This cursor runs the whole statement in one trip on the same worker thread and
connection, so nothing about transactions or thread-safety changes.

Installed by models.db when an aiosqlite engine is created; server-side
(streaming) cursors keep SQLAlchemy's own class.
"""
from __future__ import annotations

import collections
import sqlite3
from typing import Any

from sqlalchemy.connectors.asyncio import AsyncAdapt_dbapi_cursor
from sqlalchemy.dialects.sqlite import aiosqlite as sa_aiosqlite
from sqlalchemy.util import EMPTY_DICT


class OneTripCursor(AsyncAdapt_dbapi_cursor):
    __slots__ = ("_description", "_rowcount", "_lastrowid", "_arraysize")

    def __init__(self, adapt_connection: Any) -> None:
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection  # the aiosqlite.Connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self._arraysize = 1

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> Any:
        return self._lastrowid

    @property
    def arraysize(self) -> int:
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value

    async def _async_soft_close(self) -> None:
        return None

    def close(self) -> None:
        self._rows.clear()

    def setinputsizes(self, *inputsizes: Any) -> None:
        return None

    async def _in_worker(self, many: bool, operation: Any, parameters: Any) -> Any:
        aio = self._connection

        def run() -> tuple[Any, list[Any], int, int | None]:
            raw: sqlite3.Connection = aio._conn
            cursor = raw.cursor()
            try:
                if many:
                    cursor.executemany(operation, parameters)
                elif parameters is None:
                    cursor.execute(operation)
                else:
                    cursor.execute(operation, parameters)
                description = cursor.description
                rows = cursor.fetchall() if description else []
                return description, rows, cursor.rowcount, cursor.lastrowid
            finally:
                cursor.close()

        async with self._adapt_connection._execute_mutex:
            description, rows, rowcount, lastrowid = await aio._execute(run)
        self._description, self._rowcount, self._lastrowid = description, rowcount, lastrowid
        self._rows = collections.deque(rows)

    async def _execute_async(self, operation: Any, parameters: Any) -> Any:
        await self._in_worker(False, operation, parameters)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> Any:
        await self._in_worker(True, operation, seq_of_parameters)


def install() -> None:
    sa_aiosqlite.AsyncAdapt_aiosqlite_connection._cursor_cls = OneTripCursor  # type: ignore[assignment]
