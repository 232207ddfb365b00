"""Bulk writes for the seeder: Core ``insert()`` statements of many rows each, in chunks.

Rows go to the Core :class:`~sqlalchemy.Table` behind a mapped class, not to the class
itself: that skips the ORM's bulk path, so a list of rows becomes the driver's executemany,
or with RETURNING, multi-row VALUES statements of 1,000 rows ("insertmanyvalues").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Row, Table, insert
from sqlalchemy.orm import DeclarativeBase, Session

from blog.database import core_table

#: Rows handed to one ``execute()``: enough that statements are few, few enough that a
#: chunk of posts (about 12 MB of text) keeps memory flat however many posts are made.
CHUNK_SIZE = 5000


def insert_rows(session: Session, into: Table | type[DeclarativeBase],
                rows: Sequence[dict[str, Any]], *returning: str) -> list[Row[*tuple[Any, ...]]]:
    """Insert ``rows`` into a table (or a mapped class's table) in chunks, many rows per
    statement; return the columns named in ``returning`` of every row, in no particular
    order (nothing when none are named)."""
    table = into if isinstance(into, Table) else core_table(into)
    columns = [table.c[name] for name in returning]
    results: list[Row[*tuple[Any, ...]]] = []
    for part in _chunks(rows):
        if columns:
            results.extend(session.execute(insert(table).returning(*columns), part).all())
        else:
            session.execute(insert(table), part)
    return results


def _chunks(rows: Sequence[Any], size: int = CHUNK_SIZE) -> Iterable[Sequence[Any]]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]
