"""A service's copy of the customer as billed, kept from profile's events, read on the hot path.

The ledger needs the buyer's data for an invoice and whether a payment method is offered;
orders needs whether the account may pay at all. Asking profile ``get`` on every order put
one or two RPC hops on its critical path. Instead each keeps the fields below, written by
profile's events that carry them (``account_registered``, ``profile_changed``,
``country_changed``, ``company_reviewed``), and asks profile ``get`` only when it has no copy
yet (an account registered before the copy existed, or whose event has not arrived); that
answer is kept too.

Events may arrive late and out of order: a copy is replaced only by an event that occurred
after the one it holds (``as_of``). A copy taken from an RPC answer has no ``as_of``, so any
event replaces it: every change of these fields publishes one of the events above, so the
copy ends where profile is. Between a change and its event the copy is seconds old; README
"Guarantees" says why that is safe. Applying an event twice writes the same row: no inbox.
"""
from __future__ import annotations

import functools
from datetime import datetime

from sqlalchemy import JSON, Column, DateTime, MetaData, String, Table, bindparam, or_, select, update

from services.common.clock import as_utc
from services.common.locks import insert_first

# The Profile shape's fields a copy keeps (docs/CONTRACTS.md); profile's events carry all of them.
COPIED = ("first_name", "last_name", "email", "country", "city", "address", "postal_address", "profile_type",
          "company_name", "vat_id", "company_verification", "vat_id_check", "payments_blocked", "language")
# The events of profile that carry them.
EVENTS = ("account_registered", "profile_changed", "country_changed", "company_reviewed")


def add_profile_copy_table(metadata: MetaData) -> None:
    """Declare ``profile_copies``: one row per account, the copied fields as of one event."""
    Table(
        "profile_copies", metadata,
        Column("account_id", String(64), primary_key=True),
        Column("profile", JSON, nullable=False),
        Column("as_of", DateTime(timezone=True), nullable=True),
    )


def _table(session) -> Table:
    return session.info["tables"]["profile_copies"]


def copied(profile: dict) -> dict:
    """The fields a copy keeps of a Profile shape or an event."""
    return {name: profile.get(name) for name in COPIED}


def read(session, account_id: str) -> dict | None:
    """The account's copy (the fields of ``COPIED``), or None when there is none yet."""
    return session.scalar(_copy_of(_table(session)), {"account_id": account_id})


@functools.lru_cache(maxsize=8)
def _copy_of(table: Table):
    """The read of one account's copy, built once per table: every payment and charge reads it, and
    building and keying a statement costs about as much as running it (README Performance)."""
    return select(table.c.profile).where(table.c.account_id == bindparam("account_id"))


def read_all(session, account_ids: list[str]) -> dict[str, dict]:
    """The copies of these accounts, by account id, in one select (an account without one is absent)."""
    if not account_ids:
        return {}
    table = _table(session)
    return dict(session.execute(select(table.c.account_id, table.c.profile)
                                .where(table.c.account_id.in_(account_ids))).all())


def keep_answer(session, account_id: str, profile: dict) -> None:
    """Keep what profile ``get`` answered, unless an event's copy got there first."""
    insert_first(session, _table(session), account_id=account_id, profile=copied(profile), as_of=None)


def from_event(session, event: dict) -> bool:
    """Apply one of profile's events; False when it lacks the fields or is older than the copy."""
    if any(name not in event for name in COPIED) or not event.get("occurred_at"):
        return False  # from a profile that did not send them yet: the copy falls back to RPC
    table, account_id = _table(session), event["account_id"]
    as_of = as_utc(datetime.fromisoformat(event["occurred_at"].replace("Z", "+00:00")))
    profile = copied(event)
    if insert_first(session, table, account_id=account_id, profile=profile, as_of=as_of):
        return True
    return session.execute(update(table).where(
        table.c.account_id == account_id, or_(table.c.as_of.is_(None), table.c.as_of < as_of))
        .values(profile=profile, as_of=as_of)).rowcount == 1


class ProfileCopies:
    """The copy, read in the caller's transaction, with profile ``get`` over RPC when it is missing."""

    def __init__(self, uow, profiles):
        self.uow = uow
        self.profiles = profiles  # profile over RPC: get(account_id) -> the Profile shape

    def get(self, account_id: str, session=None) -> dict:
        """The account's copy; without one, profile's answer (``not_found`` for no such account), kept."""
        if session is not None and (kept := read(session, account_id)) is not None:
            return kept
        if session is None:
            with self.uow.transaction() as own:
                if (kept := read(own, account_id)) is not None:
                    return kept
        return self.ask(account_id)

    def ask(self, account_id: str) -> dict:
        """Profile's answer, kept as the copy (outside any transaction of the caller's)."""
        profile = self.profiles.get(account_id)
        with self.uow.transaction() as session:
            keep_answer(session, account_id, profile)
        return copied(profile)

    def apply(self, event: dict) -> bool:
        with self.uow.transaction() as session:
            return from_event(session, event)
