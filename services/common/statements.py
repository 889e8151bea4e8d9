"""Many rows, and many tables' writes, in one statement built once (PostgreSQL).

A statement of this kind is built once per shape (how many rows, which columns) with every
value a bound parameter, so that SQLAlchemy compiles it once: a multi-row VALUES, or a value
written into the statement, it would compile on every use. The ledger writes a movement's
journal row, postings, balance and events this way (ledger/writes.py); orders a new order and
its activation (orders/repository.py).
"""
from __future__ import annotations

from sqlalchemy import String, Table, Text, bindparam, cast, select, union_all


def bound(table: Table, prefix: str, name: str):
    """The parameter ``<prefix><name>`` for the column ``name``, of the column's type."""
    return bindparam(prefix + name, type_=table.c[name].type)


def bound_values(table: Table, prefix: str, columns) -> dict:
    """``{column: its parameter}`` for an insert's or an update's ``values()``."""
    return {name: bound(table, prefix, name) for name in columns}


def rows_of(table: Table, prefix: str, columns: tuple[str, ...], count: int):
    """``count`` rows of bound parameters ``<prefix><n>_<column>``, one SELECT each, in order; each value cast
    to its column's type (in a UNION, PostgreSQL would take a NULL for text), a string to text (a cast to
    VARCHAR(n) would cut a longer one short; the insert refuses it)."""
    rows = [select(*(cast(bound(table, f"{prefix}{n}_", name), _unbounded(table.c[name].type)) for name in columns))
            for n in range(count)]
    return rows[0] if count == 1 else union_all(*rows)


def numbered(prefix: str, rows: list[dict]) -> dict:
    """The parameters of :func:`rows_of`'s rows: ``{"<prefix><n>_<column>": value}``."""
    return {f"{prefix}{n}_{name}": value for n, row in enumerate(rows) for name, value in row.items()}


def prefixed(prefix: str, row: dict) -> dict:
    """The parameters of :func:`bound_values`: ``{"<prefix><column>": value}``."""
    return {f"{prefix}{name}": value for name, value in row.items()}


def _unbounded(type_):
    return Text() if isinstance(type_, String) else type_
