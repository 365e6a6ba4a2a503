"""Bulk writes that stay fast at 10,000+ rows on both backends.

SQLite's driver runs ``executemany`` in-process, which is already fast. Over the network to
PostgreSQL, ``executemany`` still costs one statement per row, so there we use ``COPY`` for
inserts and a single ``UPDATE ... FROM unnest(arrays)`` for keyed updates: a few round trips
for any number of rows. Both run on the session's connection, inside its transaction.
"""

from __future__ import annotations

import json
import logging
from operator import itemgetter
from datetime import datetime, timezone
from typing import Any, Callable, Iterator, Mapping, Sequence

from sqlalchemy import JSON, BigInteger, Float, Integer, Table, bindparam, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .schema import UtcDateTime

log = logging.getLogger(__name__)


_SMALL_INSERT = 100


def insert_rows(session: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` (dicts keyed by column name, all with the same keys) in the given order."""
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name == "postgresql" and len(rows) <= _SMALL_INSERT:
        # A few rows (an event push): one multi-row INSERT is one round trip; COPY takes three.
        connection.execute(table.insert(), [dict(r) for r in rows])
        return
    columns = list(rows[0].keys())
    quoted = ", ".join(f'"{c}"' for c in columns)
    if connection.dialect.name != "postgresql":
        # Straight to the driver's executemany with each column's own bind processing (JSON,
        # UTC datetimes): SQLAlchemy's per-row parameter handling would cost more than SQLite.
        dialect = connection.dialect
        processors = {c: table.c[c].type.dialect_impl(dialect).bind_processor(dialect) for c in columns}
        sql = f'INSERT INTO "{table.name}" ({quoted}) VALUES ({", ".join("?" for _ in columns)})'
        connection.exec_driver_sql(sql, [tuple(v) for v in _converted(rows, columns, processors)])
        return
    import psycopg  # only reached on PostgreSQL

    converters = {
        c: _to_json if isinstance(table.c[c].type, JSON) else _to_utc if isinstance(table.c[c].type, UtcDateTime) else None
        for c in columns
    }
    raw = connection.connection.dbapi_connection
    assert raw is not None
    statement = f'COPY "{table.name}" ({quoted}) FROM STDIN'
    try:
        with raw.cursor() as cursor:
            with cursor.copy(statement) as copy:
                for values in _converted(rows, columns, converters):
                    copy.write_row(values)
    except psycopg.errors.IntegrityError as exc:
        # Same exception type as every other statement, so callers handle one kind.
        raise IntegrityError(statement, None, exc) from exc


def _converted(
    rows: Sequence[Mapping[str, Any]], columns: list[str], converters: Mapping[str, Callable[[Any], Any] | None]
) -> Iterator[list[Any]]:
    """Each row as a list of column values, converted where a column needs it (JSON text, UTC)."""
    getter = itemgetter(*columns)
    convert = [(i, _memoized(converters[c])) for i, c in enumerate(columns) if converters.get(c) is not None]
    for row in rows:
        values = list(getter(row)) if len(columns) > 1 else [getter(row)]
        for i, fn in convert:
            values[i] = fn(values[i])  # type: ignore[misc]
        yield values


def _to_json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _to_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: the store only keeps timezone-aware UTC times")
    return value.astimezone(timezone.utc)


def _memoized(processor: Callable[[Any], Any] | None) -> Callable[[Any], Any] | None:
    """Bulk rows repeat values (one timestamp, one skills list for a whole plan): convert each
    distinct value once. Unhashable values (dicts) are converted every time."""
    if processor is None:
        return None
    cache: dict[Any, Any] = {}

    def process(value: Any) -> Any:
        key = (type(value), tuple(value)) if isinstance(value, list) else (type(value), value)
        try:
            return cache[key]
        except KeyError:
            result = cache[key] = processor(value)
            return result
        except TypeError:
            return processor(value)

    return process


def _copy_value(value: Any) -> Any:
    return _to_utc(value) if isinstance(value, datetime) else value


_PG_ARRAY_TYPES = {Integer: "bigint[]", BigInteger: "bigint[]", Float: "double precision[]"}


def update_by_key(
    session: Session,
    table: Table,
    key: str,
    rows: Sequence[Mapping[str, Any]],
    constants: Mapping[str, Any] | None = None,
) -> None:
    """``UPDATE table SET <row's other columns>, <constants> WHERE key = row[key]`` for every row."""
    if not rows:
        return
    constants = dict(constants or {})
    connection = session.connection()
    columns = [c for c in rows[0].keys() if c != key]
    if connection.dialect.name != "postgresql":
        stmt = (
            update(table)
            .where(table.c[key] == bindparam(f"b_{key}"))
            .values({**{c: bindparam(f"b_{c}") for c in columns}, **{c: bindparam(f"k_{c}") for c in constants}})
        )
        params = [{**{f"b_{c}": row[c] for c in (key, *columns)}, **{f"k_{c}": v for c, v in constants.items()}} for row in rows]
        connection.execute(stmt, params)
        return
    # One statement: the per-row values travel as arrays (one bound parameter per column).
    all_columns = [key, *columns]
    array_types = [_pg_array_type(table, c) for c in all_columns]
    unnest = ", ".join(f"CAST(:a_{c} AS {t})" for c, t in zip(all_columns, array_types))
    assignments = [f'"{c}" = v."{c}"' for c in columns] + [f'"{c}" = :k_{c}' for c in constants]
    sql = (
        f'UPDATE "{table.name}" AS t SET {", ".join(assignments)} '
        f'FROM unnest({unnest}) AS v({", ".join(chr(34) + c + chr(34) for c in all_columns)}) '
        f'WHERE t."{key}" = v."{key}"'
    )
    params: dict[str, Any] = {f"a_{c}": [row[c] for row in rows] for c in all_columns}
    params.update({f"k_{c}": _copy_value(v) for c, v in constants.items()})
    for c in all_columns:  # datetimes inside arrays skip the column's bind processing
        params[f"a_{c}"] = [_copy_value(v) for v in params[f"a_{c}"]]
    connection.execute(text(sql), params)


def _pg_array_type(table: Table, column: str) -> str:
    col_type = table.c[column].type
    for kind, array in _PG_ARRAY_TYPES.items():
        if isinstance(col_type, kind):
            return array
    if isinstance(col_type, UtcDateTime):
        return "timestamptz[]"
    return "text[]"
