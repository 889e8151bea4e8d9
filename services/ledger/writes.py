"""Where a transaction's money movements and documents are written: at once, or gathered for its end.

A movement is decided in memory (the balance row it moves, locked, keeps its new values) and
then written: its journal row, its postings, the balance row and its events. One movement
writes as it is decided, as every call of the ledger always has: on PostgreSQL in one
statement (:func:`_at_once`), on SQLite in four. ``charge_orders`` (many
orders' charges in one transaction, the lifecycle clock's renewals) gathers them instead
and writes them with one statement per table and one update per balance, then numbers the
invoices together, last (numbering.py): a hundred charges cost a dozen statements instead
of seven hundred round trips to the database.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import Table, bindparam, insert, update
from sqlalchemy.orm import Session

from services.common.locks import is_postgres
from services.common.outbox import outbox_row
from services.common.statements import bound_values, numbered, prefixed, rows_of
from services.ledger import numbering
from services.ledger.models import Balance, Posting, Transaction

_BALANCE_MOVED = update(Balance.__table__).where(Balance.account_id == bindparam("moved_account_id"))


@dataclass
class Movement:
    """One movement as decided: the rows it writes and the events it announces."""

    transaction: dict                      # the journal row
    postings: list[dict]
    account_id: str
    balance: dict                          # the balance row's columns after it
    events: list[tuple[str, dict]]         # (event type, data), in order


class Writes:
    """A transaction's movements and documents: written as they come, or (``gather``) by :meth:`flush`."""

    def __init__(self, session: Session, gather: bool = False):
        self.session = session
        self.gather = gather
        self.movements: list[Movement] = []
        self.documents: list[tuple[dict, dict]] = []

    def movement(self, movement: Movement) -> None:
        if self.gather:
            self.movements.append(movement)
        else:
            self._write([movement])

    def document(self, invoice: dict, event: dict) -> None:
        """An invoice or credit note to number: the transaction's last write (numbering.py)."""
        if self.gather:
            self.documents.append((invoice, event))
        else:
            numbering.issue_numbered(self.session, invoice, event)

    def flush(self) -> None:
        """Write what was gathered, the documents' numbers last; call it right before the commit."""
        self._write(self.movements)
        numbering.issue_numbered_all(self.session, self.documents)
        self.movements, self.documents = [], []

    def _write(self, movements: list[Movement]) -> None:
        if not movements:
            return
        session = self.session
        if len(movements) == 1 and is_postgres(session):
            session.execute(*_at_once(session, movements[0]))
            return
        session.execute(insert(Transaction.__table__), _one_or_many([m.transaction for m in movements]))
        session.execute(insert(Posting.__table__), [posting for m in movements for posting in m.postings])
        last = {m.account_id: m.balance for m in movements}   # each balance as its last movement left it
        session.execute(_BALANCE_MOVED, _one_or_many([{"moved_account_id": account_id, **values}
                                                      for account_id, values in last.items()]))
        session.execute(insert(session.info["tables"]["outbox"]), _one_or_many(
            [outbox_row(session, kind, data) for m in movements for kind, data in m.events]))


def _at_once(session: Session, movement: Movement):
    """One movement's writes as one statement (PostgreSQL): the journal row, the postings and the
    balance as data-modifying CTEs of the events' insert, one round trip instead of four."""
    events = [outbox_row(session, kind, data) for kind, data in movement.events]
    statement = _movement_statement(session.info["tables"]["outbox"], tuple(movement.transaction),
                                    tuple(movement.postings[0]), len(movement.postings),
                                    tuple(movement.balance), tuple(events[0]), len(events))
    parameters = prefixed("journal_", movement.transaction)
    parameters.update(numbered("leg", movement.postings))
    parameters.update(prefixed("moved_", movement.balance))
    parameters.update(numbered("event", events), moved_account_id=movement.account_id)
    return statement, parameters


@lru_cache(maxsize=32)
def _movement_statement(outbox: Table, journal: tuple[str, ...], leg: tuple[str, ...], legs: int,
                        moved: tuple[str, ...], event: tuple[str, ...], events: int):
    """:func:`_at_once`'s statement for a movement of this shape, built once, all of it bound
    parameters, so that SQLAlchemy compiles it once (a multi-row VALUES it would compile on every
    use). The CTEs share one snapshot and none reads what another writes; the postings' foreign
    key to the journal row is checked at the statement's end, when both are there."""
    transactions, postings, balances = Transaction.__table__, Posting.__table__, Balance.__table__
    return insert(outbox).from_select(list(event), rows_of(outbox, "event", event, events)).add_cte(
        insert(transactions).values(bound_values(transactions, "journal_", journal)).cte("journal"),
        insert(postings).from_select(list(leg), rows_of(postings, "leg", leg, legs)).cte("legs"),
        update(balances).where(Balance.account_id == bindparam("moved_account_id"))
        .values(bound_values(balances, "moved_", moved)).cte("moved"))


def _one_or_many(rows: list[dict]) -> dict | list[dict]:
    """A single row as one statement's parameters; more as an executemany."""
    return rows[0] if len(rows) == 1 else rows
