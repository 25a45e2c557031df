from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from jobforge_sdk.tooling.sqltext import normalized, split_statements


def test_splits_on_semicolons_outside_quotes_and_comments() -> None:
    sql = """
    -- leading comment; with a semicolon
    create table a (x text default 'a;b');
    /* block ; comment /* nested ; */ still */
    create function f() returns int language plpgsql as $body$
    begin
      perform 1; return 2;
    end $body$;
    select $$;$$, "weird;name", E'it\\'s;';
    select 1
    """
    assert split_statements(sql) == [
        "-- leading comment; with a semicolon\n    create table a (x text default 'a;b')",
        "/* block ; comment /* nested ; */ still */\n    create function f() returns int "
        "language plpgsql as $body$\n    begin\n      perform 1; return 2;\n    end $body$",
        "select $$;$$, \"weird;name\", E'it\\'s;'",
        "select 1",
    ]


def test_comment_only_chunks_are_dropped() -> None:
    assert split_statements("select 1; -- trailing\n/* end */") == ["select 1"]


def test_positional_parameters_are_not_dollar_quotes() -> None:
    assert split_statements("prepare p as select $1; select 2") == [
        "prepare p as select $1",
        "select 2",
    ]


@given(st.lists(st.from_regex(r"select [a-z0-9 ,']{0,20}", fullmatch=True), min_size=1))
def test_normalized_ignores_whitespace(stmts: list[str]) -> None:
    spaced = [s.replace(" ", "  \n ") for s in stmts]
    assert normalized(stmts) == normalized(spaced)
