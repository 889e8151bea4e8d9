"""Every list's paging (services/common/pagination.py): the cursor, the limit policy, the page query."""
from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import DateTime, String, create_engine, insert, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from services.common.errors import ValidationError
from services.common.pagination import (PageQuerySchema, decode_cursor, encode_cursor, keyset_page,
                                        page_limit)
from services.common.schemas import load

NOON = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)


@given(st.integers(min_value=0, max_value=2**62))
def test_a_cursor_names_the_position_it_was_made_from(seq):
    assert decode_cursor(encode_cursor([seq]), [int]) == (seq,)


@given(st.datetimes(timezones=st.just(timezone.utc)), st.text(alphabet="0123456789abcdef-", max_size=36))
def test_a_cursor_keeps_a_time_to_the_microsecond_and_a_text_id(at, order_id):
    cursor = encode_cursor([at, order_id])
    assert decode_cursor(cursor, [datetime, str]) == (at, order_id)


def test_a_cursor_is_opaque_and_safe_in_a_url():
    cursor = encode_cursor([NOON, "5d0c6f4e-8b1f-4a57-9a51-6f7f3c1b2a90"])
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert "2026" not in cursor


def test_a_naive_time_read_back_from_sqlite_is_taken_as_utc():
    assert decode_cursor(encode_cursor([NOON.replace(tzinfo=None)]), [datetime]) == (NOON,)


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize("cursor", [
    "", "forged", "!!!", "x" * 201, 5, ["1"], b64("[1,2]"), b64('["1"]'), b64("[true]"), b64("[1.5]"),
    b64("{}"), b64("v1:10"), b64("[-1"),
])
def test_a_cursor_the_list_did_not_hand_out_is_a_validation_error_naming_cursor(cursor):
    with pytest.raises(ValidationError) as refused:
        decode_cursor(cursor, [int])
    assert list(refused.value.fields) == ["cursor"]


def test_a_time_cursor_needs_a_time():
    with pytest.raises(ValidationError):
        decode_cursor(b64('["yesterday", "o-1"]'), [datetime, str])


def test_no_cursor_is_the_first_page():
    assert decode_cursor(None, [int]) is None


@pytest.mark.parametrize("limit, expected", [(None, 50), (1, 1), (50, 50), (100, 100)])
def test_a_limit_is_1_to_100_and_50_when_not_given(limit, expected):
    assert page_limit(limit) == expected


@pytest.mark.parametrize("limit", [0, -1, 101, 1000, "10", 1.5, True])
def test_any_other_limit_is_refused_not_clamped(limit):
    with pytest.raises(ValidationError) as refused:
        page_limit(limit)
    assert refused.value.fields == {"limit": ["must be 1 to 100"]}


def test_the_gateways_page_query_reads_text_and_refuses_what_rpc_refuses():
    assert load(PageQuerySchema, {}) == {"limit": 50, "cursor": None}
    assert load(PageQuerySchema, {"limit": "20", "cursor": "abc"}) == {"limit": 20, "cursor": "abc"}
    for query, field in [({"limit": "0"}, "limit"), ({"limit": "101"}, "limit"), ({"limit": "1.5"}, "limit"),
                         ({"limit": "ten"}, "limit"), ({"cursor": ""}, "cursor"), ({"cursor": "x" * 201}, "cursor"),
                         ({"colour": "red"}, "colour")]:
        with pytest.raises(ValidationError) as refused:
            load(PageQuerySchema, query)
        assert list(refused.value.fields) == [field], query


# --- one query for every list: newest first, no row twice, none skipped ----------------------------

class Base(DeclarativeBase):
    pass


class Thing(Base):
    __tablename__ = "things"

    seq: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(10))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@pytest.fixture
def session():
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        yield session
    engine.dispose()


def pages(session, order, limit):
    query = select(Thing).where(Thing.owner == "anna")
    seen, cursor = [], None
    while True:
        page = keyset_page(session, query, order, limit, cursor)
        seen.append([row.seq for row in page.rows])
        if page.next_cursor is None:
            return seen
        cursor = page.next_cursor


def test_pages_run_newest_first_by_time_then_by_the_unique_column_with_ties_split_across_pages(session):
    # Seven rows, four of them written in the same microsecond: the tie is broken by seq.
    times = [NOON, NOON + timedelta(seconds=1)] + [NOON + timedelta(seconds=2)] * 4 + [NOON + timedelta(seconds=3)]
    session.execute(insert(Thing), [{"seq": seq, "owner": "anna", "at": at} for seq, at in enumerate(times, 1)])
    session.execute(insert(Thing), [{"seq": 100, "owner": "olga", "at": NOON}])
    assert pages(session, [Thing.at, Thing.seq], 3) == [[7, 6, 5], [4, 3, 2], [1]]
    assert pages(session, [Thing.seq], 7) == [[7, 6, 5, 4, 3, 2, 1]]


def test_a_list_of_exactly_one_page_has_no_next_cursor_and_an_empty_list_none_either(session):
    assert keyset_page(session, select(Thing), [Thing.seq], 5).answer(lambda row: row.seq) == {
        "items": [], "next_cursor": None}
    session.execute(insert(Thing), [{"seq": seq, "owner": "anna", "at": NOON} for seq in (1, 2)])
    assert keyset_page(session, select(Thing), [Thing.seq], 2).next_cursor is None
