"""Quoting for DuckDB SQL: every literal and name pasted into a statement goes through here."""

from __future__ import annotations

from typing import Iterable


def sql_str(text: object) -> str:
    """A string literal."""
    return "'" + str(text).replace("'", "''") + "'"


def ident(name: str) -> str:
    """A quoted identifier (a column or table name)."""
    return '"' + name.replace('"', '""') + '"'


def column_list(names: Iterable[str], table: str = "") -> str:
    """`"a", "b"`, or `t."a", t."b"` with a table alias."""
    prefix = f"{table}." if table else ""
    return ", ".join(prefix + ident(n) for n in names)
