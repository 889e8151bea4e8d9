"""Every service's Alembic history builds exactly the tables its models describe (what
`alembic check` does, with column types and server defaults compared too), on SQLite and, with
TEST_DATABASE=postgres, on PostgreSQL.

A model changed without a migration (or a migration that builds something else) fails here,
whatever way the migrations are written: only their result, a migrated database, is compared.
"""
from __future__ import annotations

import importlib
import re

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from services.common.config import SERVICES
from services.common.migrations import alembic_config


@pytest.mark.parametrize("service", SERVICES)
def test_the_migrated_database_has_exactly_the_tables_columns_and_indexes_of_the_models(service,
                                                                                         migrated_databases):
    heads = ScriptDirectory.from_config(alembic_config(service)).get_heads()
    assert len(heads) == 1, f"{service} has more than one head: {heads}"
    metadata = importlib.import_module(f"services.{service}.models").Base.metadata
    engine = create_engine(migrated_databases[service], poolclass=NullPool)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True,
                                                                   "compare_server_default": server_defaults_differ})
            assert context.get_current_revision() == heads[0]
            differences = compare_metadata(context, metadata)
    finally:
        engine.dispose()
    assert differences == [], f"{service}: models and migrations differ; add a revision " \
                              f"(python -m deploy.migrate revision {service} -m ...): {differences}"


def server_defaults_differ(context, inspected_column, metadata_column, inspected_default, metadata_default,
                           rendered_metadata_default) -> bool:
    """Compare the defaults' text: Alembic's own comparison asks PostgreSQL ``'[]'::json = '[]'``,
    which has no such operator for JSON."""
    return _plain(inspected_default) != _plain(rendered_metadata_default)


def _plain(default: str | None) -> str | None:
    """``'[]'::json`` -> ``[]``, ``'x'::character varying`` -> ``x``; SQLite's ``0``/``1`` for false/true."""
    if default is None:
        return None
    text = re.sub(r"::[a-z ]+", "", default).strip().strip("()").strip("'").lower()
    return {"0": "false", "1": "true"}.get(text, text)
