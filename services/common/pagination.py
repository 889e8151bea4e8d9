"""Lists in pages, the same for every list over HTTP and RPC: one limit policy, one cursor, one query.

A list answers ``{"items": [...], "next_cursor": "..." | null}``, newest first. ``limit`` is
1 to 100, 50 when not given; any other value is refused with ``validation_error`` naming
``limit`` (never quietly clamped, so a client learns its page size is not what it asked).
A cursor is opaque to clients: the url-safe base64 of the last item's position in the list
(the values it is sorted by, as JSON); a cursor the list did not hand out is
``validation_error`` naming ``cursor``.
"""
from __future__ import annotations

import base64
import binascii
import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from marshmallow import fields, validate
from sqlalchemy import and_, bindparam, or_

from services.common.clock import as_utc
from services.common.errors import ValidationError
from services.common.schemas import MESSAGES, StrictSchema

DEFAULT_LIMIT = 50
MAX_LIMIT = 100
MAX_CURSOR_LENGTH = 200
LIMIT_PROBLEM = f"must be 1 to {MAX_LIMIT}"
CURSOR_PROBLEM = "is not a cursor from this list"


class PageQuerySchema(StrictSchema):
    """``?limit=&cursor=`` of every list the gateway serves (query strings are text)."""

    limit = fields.Integer(load_default=DEFAULT_LIMIT, error_messages=MESSAGES,
                           validate=validate.Range(min=1, max=MAX_LIMIT, error=LIMIT_PROBLEM),
                           metadata={"description": f"1 to {MAX_LIMIT}, default {DEFAULT_LIMIT}"})
    cursor = fields.String(load_default=None, error_messages=MESSAGES,
                           validate=validate.Length(min=1, max=MAX_CURSOR_LENGTH, error=CURSOR_PROBLEM),
                           metadata={"description": "next_cursor of the previous page; absent for the first"})


def page_limit(limit) -> int:
    """The page size asked for: 1 to 100, 50 when not given."""
    if limit is None:
        return DEFAULT_LIMIT
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ValidationError({"limit": [LIMIT_PROBLEM]})
    return limit


def encode_cursor(position: Sequence) -> str:
    """The cursor after an item at ``position`` (the values the list is sorted by)."""
    values = [as_utc(value).isoformat() if isinstance(value, datetime) else value for value in position]
    raw = json.dumps(values, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor, types: Sequence[type]) -> tuple | None:
    """The position a cursor names, each value of the given type; None for the first page."""
    if cursor is None:
        return None
    try:
        if not isinstance(cursor, str) or not cursor or len(cursor) > MAX_CURSOR_LENGTH:
            raise ValueError(cursor)
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(values, list) or len(values) != len(types):
            raise ValueError(cursor)
        return tuple(_typed(value, kind) for value, kind in zip(values, types))
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise ValidationError({"cursor": [CURSOR_PROBLEM]}) from None


def _typed(value, kind: type):
    if kind is datetime and isinstance(value, str):
        return as_utc(datetime.fromisoformat(value))
    if isinstance(value, kind) and not isinstance(value, bool):
        return value
    raise ValueError(value)


@dataclass(frozen=True)
class Page:
    """The rows of one page and the cursor of the next (None on the last page)."""

    rows: list
    next_cursor: str | None

    def answer(self, view: Callable) -> dict:
        return {"items": [view(row) for row in self.rows], "next_cursor": self.next_cursor}


def keyset_page(session, query, order: Sequence, limit=None, cursor=None, params: dict | None = None) -> Page:
    """One page of ``query``'s rows, newest first by the ``order`` columns, after ``cursor``.

    The last column of ``order`` must be unique, so that the position of every row is too and
    a page never repeats or skips a row, whatever is written meanwhile. ``params``: the values of
    ``query``'s bound parameters, for a query built once (a hot read's) rather than per call; its
    first page then runs a statement built once too, ordered and limited by a parameter.
    """
    limit = page_limit(limit)
    if cursor is None and params is not None:    # a hot read's first page: its statement built once
        rows = session.scalars(_first_page(query, tuple(order)), {**params, "page_rows": limit + 1}).all()
    else:
        position = decode_cursor(cursor, [column.type.python_type for column in order])
        if position is not None:
            query = query.where(_before(order, position))
        rows = session.scalars(query.order_by(*(column.desc() for column in order)).limit(limit + 1), params).all()
    if len(rows) <= limit:
        return Page(list(rows), None)
    last = rows[limit - 1]
    return Page(list(rows[:limit]), encode_cursor([getattr(last, column.key) for column in order]))


@functools.lru_cache(maxsize=64)
def _first_page(query, order: tuple):
    """A query built once, newest first, its page size a parameter (``page_rows``)."""
    return query.order_by(*(column.desc() for column in order)).limit(bindparam("page_rows"))


def _before(order: Sequence, position: tuple):
    """``(a, b, ...) < (x, y, ...)``, spelt out so that every database reads it the same."""
    clause = order[-1] < position[-1]
    for column, value in zip(reversed(order[:-1]), reversed(position[:-1])):
        clause = or_(column < value, and_(column == value, clause))
    return clause
