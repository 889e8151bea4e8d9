"""Where a transaction's money movements and documents are written: at once, or gathered for its end.

A movement is decided in memory (the balance row it moves, locked, keeps its new values) and
then written: its journal row, its postings, the balance row and its events. One movement
writes as it is decided, as every call of the ledger always has. ``charge_orders`` (many
orders' charges in one transaction, the lifecycle clock's renewals) gathers them instead
and writes them with one statement per table and one update per balance, then numbers the
invoices together, last (numbering.py): a hundred charges cost a dozen statements instead
of seven hundred round trips to the database.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, insert, update
from sqlalchemy.orm import Session

from services.common.outbox import outbox_row
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
        session.execute(insert(Transaction.__table__), _one_or_many([m.transaction for m in movements]))
        session.execute(insert(Posting.__table__), [posting for m in movements for posting in m.postings])
        last = {m.account_id: m.balance for m in movements}   # each balance as its last movement left it
        session.execute(_BALANCE_MOVED, _one_or_many([{"moved_account_id": account_id, **values}
                                                      for account_id, values in last.items()]))
        session.execute(insert(session.info["tables"]["outbox"]), _one_or_many(
            [outbox_row(session, kind, data) for m in movements for kind, data in m.events]))


def _one_or_many(rows: list[dict]) -> dict | list[dict]:
    """A single row as one statement's parameters; more as an executemany."""
    return rows[0] if len(rows) == 1 else rows
