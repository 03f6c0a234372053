"""Reading .sql files and splitting them into statements the way psql does."""

from __future__ import annotations

import codecs
import os
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cruddur.errors import SqlFileError, UnterminatedSql
from cruddur.postgres import psql
from cruddur.postgres.sql_text import decode_sql, read_sql, split
from tests.helpers import examples


def texts(sql: str) -> list[str]:
    return [statement.text for statement in split(sql)]


def test_a_last_statement_without_a_semicolon_is_a_statement_and_a_comment_after_it_stays_a_comment():
    assert texts("SELECT 1;\nSELECT 2 -- the end\n") == ["SELECT 1", "SELECT 2 -- the end"]
    assert texts("SELECT 1; -- trailing\n") == ["SELECT 1"]


def test_semicolons_inside_quotes_comments_dollar_quotes_and_parentheses_do_not_split():
    sql = """
    SELECT 'a;b', E'it\\'s;', "odd;name" FROM t; /* a ; /* nested ; */ still ; */
    CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; SELECT 2; $body$ LANGUAGE sql;
    DO $$ BEGIN PERFORM 1; END $$;
    CREATE RULE r AS ON INSERT TO t DO ALSO (SELECT 1; SELECT 2);
    """
    assert [s.split()[0] for s in texts(sql)] == ["SELECT", "CREATE", "DO", "CREATE"]


def test_a_begin_atomic_body_is_one_statement_and_case_inside_it_nests():
    sql = """
    CREATE OR REPLACE FUNCTION g(x int) RETURNS int LANGUAGE sql
    BEGIN ATOMIC
      SELECT CASE WHEN x > 0 THEN 1 ELSE 0 END;
      SELECT 2;
    END;
    SELECT 3;
    """
    found = texts(sql)
    assert len(found) == 2 and found[1] == "SELECT 3"


def test_each_statement_knows_the_line_it_starts_on():
    sql = "-- header\n\nSELECT 1;\n/* c */ SELECT\n  2;"
    assert [(s.text, s.line) for s in split(sql, first_line=10)] == [("SELECT 1", 12), ("SELECT\n  2", 13)]


def test_only_comments_and_whitespace_hold_no_statement():
    assert split("  -- nothing\n/* at all */\n;\n") == []


@pytest.mark.parametrize(
    "sql, what, line",
    [
        ("SELECT 1;\n/* never closed\nSELECT 2;", "a /* comment", 2),
        ("SELECT 'open;\n", "a quoted string", 1),
        ('SELECT 1;\n\nSELECT "open', 'a quoted identifier (")', 3),
        ("SELECT $x$ open", "a dollar quote $x$", 1),
    ],
)
def test_an_unterminated_quote_or_comment_names_its_line(sql, what, line):
    with pytest.raises(UnterminatedSql) as raised:
        split(sql, "f.sql")
    assert str(raised.value) == f"f.sql:{line}: {what} starts here and never ends; nothing of it was run"


def test_a_nul_byte_a_bom_and_text_that_is_not_utf8(tmp_path):
    with pytest.raises(SqlFileError, match=r"^f.sql:2: holds a NUL byte \(at byte 10\); SQL text cannot"):
        decode_sql(b"SELECT 1;\n\0SELECT 2;", "f.sql")
    with pytest.raises(SqlFileError, match=r"^f.sql:1: not UTF-8 text"):
        decode_sql(b"SELECT '\xff';", "f.sql")
    assert decode_sql(codecs.BOM_UTF8 + b"SELECT 1;", "f.sql") == "SELECT 1;"
    with pytest.raises(SqlFileError, match=r"^missing.sql: cannot read it: No such file"):
        read_sql(tmp_path / "nope.sql", "missing.sql")


# Statements built from pieces that hold `;` where it must not split; joined with `;` and
# comments, the splitter must give each one back whole.
_piece = st.sampled_from(
    [
        "SELECT 1",
        "SELECT ';'",
        "SELECT 'it''s; fine'",
        "SELECT E'\\\\'",
        "SELECT E'a\\';b'",
        'SELECT 1 AS "x;y"',
        "SELECT $$;$$",
        "SELECT $tag$ $$ ; $tag$",
        "SELECT (1) /* ; */",
        "SELECT array_length(ARRAY[1, 2], 1)",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END",
    ]
)
_gap = st.sampled_from([";", ";\n", "; -- note ; \n", ";/* ; */", ";\n\n-- x\n"])


@settings(max_examples=examples(60), deadline=None)
@given(st.lists(st.tuples(_piece, _gap), min_size=1, max_size=6), st.booleans())
def test_joined_statements_split_back_into_the_same_statements(parts, drop_last_semicolon):
    sql = "".join(piece + gap for piece, gap in parts)
    if drop_last_semicolon:
        sql = sql.rstrip().removesuffix(";") if sql.rstrip().endswith(";") else sql
    found = texts(sql)
    assert [f.split(" /*")[0].split(" --")[0] for f in found] == [piece.split(" /*")[0] for piece, _ in parts]


def test_the_split_agrees_with_psql_on_a_real_server(database_url, tmp_path):
    """psql -e echoes each statement as it sends it: the same statements split() finds."""
    sql = (
        "CREATE TABLE t (x text); -- one\n"
        "INSERT INTO t VALUES ('a;b'), (E'c\\';d'), ($$e;f$$);\n"
        "/* a ; comment */ CREATE FUNCTION g() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END;\n"
        "SELECT count(*)\n  FROM t -- no semicolon at the end\n"
    )
    path = tmp_path / "f.sql"
    path.write_text(sql)
    target, env = psql.conninfo_without_password(database_url, "test")
    result = subprocess.run(
        [
            str(psql.find_psql(prefer_bundled=True)),
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-e",
            "-o",
            "/dev/null",
            "-d",
            target,
            "-f",
            str(path),
        ],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    # psql echoes the `;` that ended a statement and keeps a block comment before it.
    echoed = result.stdout.replace(";\n", "\n").replace("/* a ; comment */ ", "")
    assert echoed == "".join(statement.text + "\n" for statement in split(sql))
