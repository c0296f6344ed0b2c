"""Column lists of tables, kept a few seconds for InsertData.

An insert needs the table's column types to encode its rows. Looking them
up costs a second round trip per call; this cache keeps each table's
columns for ``SIDECAR_SCHEMA_CACHE_SECONDS`` (0 turns it off). DDL sent
through the sidecar forgets the table at once, and an insert that ClickHouse
rejects forgets it too, so the next call reads the schema again.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["ColumnCache", "TableColumn"]


@dataclass(frozen=True, slots=True)
class TableColumn:
    name: str
    type: str
    default_kind: str


class ColumnCache:
    def __init__(self, seconds: float, size: int = 1024) -> None:
        self._seconds = seconds
        self._size = size
        self._entries: OrderedDict[tuple[str, str], tuple[float, list[TableColumn]]] = (
            OrderedDict()
        )

    def get(self, database: str, table: str) -> list[TableColumn] | None:
        entry = self._entries.get((database, table))
        if entry is None:
            return None
        expires, columns = entry
        if time.monotonic() >= expires:
            del self._entries[(database, table)]
            return None
        return columns

    def put(self, database: str, table: str, columns: list[TableColumn]) -> None:
        if self._seconds <= 0:
            return
        self._entries[(database, table)] = (time.monotonic() + self._seconds, columns)
        self._entries.move_to_end((database, table))
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def forget(self, database: str, table: str) -> None:
        self._entries.pop((database, table), None)

    def clear(self) -> None:
        self._entries.clear()
