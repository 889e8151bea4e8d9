"""The notifier service's tables."""
from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase

from services.common.outbox import add_messaging_tables


class Base(DeclarativeBase):
    pass


add_messaging_tables(Base.metadata)
