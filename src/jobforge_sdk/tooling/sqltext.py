"""Split a SQL file into statements the way psql and the Supabase CLI see them.

The runner executes a migration one statement at a time so that an error can name the
statement that failed, checksums the statements, and compares them with those the
Supabase CLI recorded in ``supabase_migrations.schema_migrations.statements`` (which it
splits the same way, except that it keeps comment-only chunks). Splitting must therefore
respect quotes, dollar quotes and comments; nothing else is needed.
"""

from __future__ import annotations

import re

__all__ = ["normalized", "split_statements"]

_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")


def split_statements(sql: str) -> list[str]:
    """Return the non-empty statements of ``sql``, each without its trailing semicolon."""
    statements: list[str] = []
    start = 0
    i = 0
    n = len(sql)
    while i < n:
        ch = sql[i]
        if ch == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end == -1 else end + 1
        elif ch == "/" and sql.startswith("/*", i):
            i = _skip_block_comment(sql, i)
        elif ch in ("'", '"'):
            i = _skip_quoted(sql, i, ch, backslash=ch == "'" and _is_escape_string(sql, i))
        elif ch == "$" and (match := _DOLLAR_TAG.match(sql, i)) and not _in_identifier(sql, i):
            tag = match.group(0)
            end = sql.find(tag, match.end())
            i = n if end == -1 else end + len(tag)
        elif ch == ";":
            _append(statements, sql[start:i])
            i += 1
            start = i
        else:
            i += 1
    _append(statements, sql[start:])
    return statements


def normalized(statements: list[str]) -> str:
    """Whitespace-insensitive form used to tell whether an applied file has changed."""
    return " ".join(" ".join(statements).split())


def _append(statements: list[str], chunk: str) -> None:
    text = chunk.strip()
    if text and not _only_comments(text):
        statements.append(text)


def _only_comments(text: str) -> bool:
    stripped = re.sub(r"--[^\n]*", "", text)
    stripped = re.sub(r"/\*.*?\*/", "", stripped, flags=re.DOTALL)
    return not stripped.strip()


def _skip_block_comment(sql: str, i: int) -> int:
    # Block comments nest in PostgreSQL.
    depth = 0
    n = len(sql)
    while i < n:
        if sql.startswith("/*", i):
            depth += 1
            i += 2
        elif sql.startswith("*/", i):
            depth -= 1
            i += 2
            if depth == 0:
                return i
        else:
            i += 1
    return n


def _is_escape_string(sql: str, i: int) -> bool:
    # E'...' literals let a backslash escape the quote.
    return i > 0 and sql[i - 1] in "eE" and not _in_identifier(sql, i - 1)


def _skip_quoted(sql: str, i: int, quote: str, *, backslash: bool = False) -> int:
    # A doubled quote inside the literal is an escaped quote, not its end.
    i += 1
    n = len(sql)
    while i < n:
        if backslash and sql[i] == "\\":
            i += 2
            continue
        if sql[i] == quote:
            if i + 1 < n and sql[i + 1] == quote:
                i += 2
                continue
            return i + 1
        i += 1
    return n


def _in_identifier(sql: str, i: int) -> bool:
    # `$1` style parameters and identifiers such as a$b are not dollar quotes.
    return i > 0 and (sql[i - 1].isalnum() or sql[i - 1] == "_")
