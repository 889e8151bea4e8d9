"""How introserv-ops answers: Rich tables for people, one JSON document for scripts (``--json``)."""
from __future__ import annotations

import json

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from introserv_clients.errors import IntroservError
from introserv_clients.money import Money, to_json


class Output:
    """Where a command's answer goes: ``human`` renders it, ``--json`` prints the data as they are."""

    def __init__(self, as_json: bool = False):
        self.as_json = as_json

    @property
    def console(self) -> Console:
        # made when used, so it writes to whatever sys.stdout is then (a test's CliRunner swaps it)
        return Console(highlight=False, soft_wrap=True)   # lines keep whole; tables still fit the width

    @property
    def notes(self) -> Console:
        """Prompts, previews and progress: stderr when stdout carries JSON, so a script reads one document."""
        return Console(highlight=False, stderr=self.as_json, soft_wrap=True)

    def data(self, value) -> None:
        click.echo(json.dumps(value, default=to_json, ensure_ascii=False, indent=2))

    def show(self, value, *renderables) -> None:
        """``value`` under --json, else the tables and lines given."""
        if self.as_json:
            self.data(value)
            return
        for renderable in renderables:
            self.console.print(renderable)

    def error(self, error: IntroservError) -> None:
        if self.as_json:
            self.data(error.to_body())
            return
        lines = [f"[bold red]{escape(error.code)}[/]: {escape(error.message)}"]
        for name, problems in error.fields.items():
            said = ", ".join(map(str, problems)) if isinstance(problems, list) else json.dumps(problems)
            lines.append(f"  {escape(name)}: {escape(said)}")
        Console(stderr=True, highlight=False, soft_wrap=True).print("\n".join(lines))


def fields_table(title: str, rows: list[tuple[str, object]]) -> Table:
    """A two-column table: what, and its value."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for name, value in rows:
        table.add_row(name, text(value))
    return table


def list_table(title: str, columns: list[str], rows: list[list], next_cursor: str | None = None) -> Table:
    caption = f"more: --cursor {next_cursor}" if next_cursor else None
    table = Table(title=title, caption=caption, title_justify="left", caption_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(text(value) for value in row))
    return table


def when(value: str | None) -> str | None:
    """An ISO time as a person reads it in a table: to the second, in UTC."""
    return value and value[:19].replace("T", " ")


def text(value) -> str:
    """A value as a person reads it in a cell."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Money):
        return str(value)
    if isinstance(value, (dict, list)):
        return escape(json.dumps(value, default=to_json, ensure_ascii=False))
    return escape(str(value))
