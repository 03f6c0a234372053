"""db.dump and db.restore: a round trip keeps every row, a bad file changes nothing, and the
password never reaches a command line."""

import os
import re
import stat
import subprocess
from pathlib import Path

import psycopg
import pytest
from psycopg import conninfo
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cruddur.errors import DatabaseError
from cruddur.postgres import dump, local_server, urls
from tests.helpers import add_user, assert_one_line_error


def handles(url):
    with psycopg.connect(url) as conn:
        return sorted(h for (h,) in conn.execute("SELECT handle FROM users"))


def test_dump_then_restore_round_trip(run_task, schema_url, tmp_path):
    dev = {"CONNECTION_URL": schema_url}
    add_user(schema_url, "keeper")
    path = tmp_path / "keep.dump"
    result = run_task("db.dump", "--output", str(path), env=dev)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"dumped dev database {urls.describe(schema_url)} to {path} (") and result.stdout.endswith(" kB)\n")
    assert path.read_bytes().startswith(b"PGDMP")  # pg_dump's custom format
    assert not path.with_name(path.name + ".partial").exists()
    add_user(schema_url, "after_the_dump")
    restored = run_task("db.restore", str(path), env=dev)
    assert restored.returncode == 0, restored.stderr
    assert restored.stdout.splitlines()[-1] == f"  replaced {urls.dbname(schema_url)} from {path}"
    assert handles(schema_url) == ["keeper"]


def test_dump_defaults_to_the_backups_folder_with_the_database_and_utc_time(run_task, schema_url):
    result = run_task("db.dump", env={"CONNECTION_URL": schema_url})
    assert result.returncode == 0, result.stderr
    path = Path(result.stdout.split(" to ", 1)[1].rsplit(" (", 1)[0])
    try:
        assert path.parent == Path(__file__).resolve().parents[2] / "backups"
        assert path.name.startswith(urls.dbname(schema_url) + "-20") and path.name.endswith("Z.dump")
    finally:
        path.unlink()


@pytest.mark.parametrize("content", [b"", b"garbage, not a dump", b"PGDMP\x01\x10\x00\x04\x08\x01\x01truncated"])
def test_restoring_a_corrupt_file_leaves_the_database_untouched(inv, schema_url, tmp_path, content):
    add_user(schema_url, "keeper")
    bad = tmp_path / "bad.dump"
    bad.write_bytes(content)
    line = assert_one_line_error(inv("db.restore", str(bad), env={"CONNECTION_URL": schema_url}))
    assert line.startswith(f"error: {bad} is not a readable pg_dump custom-format file (pg_restore failed: ")
    assert line.endswith("; nothing changed")
    assert handles(schema_url) == ["keeper"]


def test_restoring_a_missing_file_is_one_line(run_task, schema_url, tmp_path):
    assert_one_line_error(run_task("db.restore", str(tmp_path / "none.dump"), env={"CONNECTION_URL": schema_url}), "none.dump: no such file")


def test_a_restore_that_fails_half_way_leaves_the_database_and_no_scratch(schema_url, tmp_path):
    add_user(schema_url, "keeper")
    path = tmp_path / "full.dump"
    dump.dump(schema_url, path)
    # Damage the compressed table data near the end: the table of contents still reads (so the
    # file passes the first check), the data does not, and pg_restore stops midway.
    data = path.read_bytes()
    path.write_bytes(data[:-150] + bytes(b ^ 0xFF for b in data[-150:-130]) + data[-130:])
    assert subprocess.run([str(dump.find_program("pg_restore")), "--list", str(path)], capture_output=True).returncode == 0
    add_user(schema_url, "after_the_dump")
    with pytest.raises(DatabaseError, match=r"^pg_restore failed on "):
        dump.restore(schema_url, path)
    assert handles(schema_url) == ["after_the_dump", "keeper"]
    with psycopg.connect(urls.with_dbname(schema_url, "postgres")) as conn:
        assert conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (urls.dbname(schema_url) + "\\_\\_%",)).fetchall() == []


def test_pg_dump_is_never_older_than_the_wheels():
    def major(program):
        out = subprocess.run([str(program), "--version"], capture_output=True, text=True, check=True).stdout
        return int(re.search(r"\) (\d+)", out).group(1))

    assert major(dump.find_program("pg_dump")) >= major(local_server.bin_dir() / "pg_dump") == 18


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(password=st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), min_size=1, max_size=20))
def test_the_password_goes_through_the_environment_never_argv(tmp_path, password):
    # A password that pg_dump's own message happens to contain ("d") is masked there too.
    assume(password not in "pg_dump: error: refused")
    # A fake pg_dump on PATH, newer than any real one, records what it was given.
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    record = tmp_path / "record"
    fake = folder / "pg_dump"
    fake.write_text(f'#!/bin/sh\nif [ "$1" = --version ]; then echo "pg_dump (PostgreSQL) 99.0"; exit 0; fi\n'
                    f'printf "%s\\n" "$@" > {record}\nprintf "%s" "$PGPASSWORD" > {record}.env\necho "pg_dump: error: refused" >&2\nexit 1\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    url = f"postgresql://postgres:{urls_quote(password)}@127.0.0.1:1/cruddur"
    old_path = os.environ["PATH"]
    os.environ["PATH"] = f"{folder}:{old_path}"
    try:
        with pytest.raises(DatabaseError) as failure:
            dump.dump(url, tmp_path / "out.dump")
    finally:
        os.environ["PATH"] = old_path
    assert str(failure.value) == "pg_dump failed on postgres@127.0.0.1:1/cruddur: error: refused"
    argv = record.read_text(encoding="utf-8").splitlines()
    target = conninfo.conninfo_to_dict(argv[argv.index("--dbname") + 1])
    assert "password" not in target and target["host"] == "127.0.0.1"
    partial = tmp_path / "out.dump.partial"
    assert argv[:1] + argv[2:] == ["--dbname", "--format=custom", "--lock-wait-timeout=5000", f"--file={partial}"]
    assert Path(f"{record}.env").read_text(encoding="utf-8") == password
    assert not (tmp_path / "out.dump").exists()


def urls_quote(text):
    from urllib.parse import quote

    return quote(text, safe="")
