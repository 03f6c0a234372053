"""db.dump and db.restore: a round trip keeps every row, a bad file changes nothing, and the
password never reaches a command line."""

import os
import re
import stat
import subprocess
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from psycopg import conninfo

from cruddur.errors import MASK, DatabaseError
from cruddur.files import partial_path
from cruddur.postgres import dump, local_server, urls
from tests.helpers import add_user, assert_one_line_error, examples, free_port, temporary_pgdata


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
    assert not list(path.parent.glob("*.partial"))
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
def test_restoring_a_corrupt_file_leaves_the_database_untouched(run_task, schema_url, tmp_path, content):
    add_user(schema_url, "keeper")
    bad = tmp_path / "bad.dump"
    bad.write_bytes(content)
    line = assert_one_line_error(run_task("db.restore", str(bad), env={"CONNECTION_URL": schema_url}))
    assert line.startswith(f"error: {bad} is not a readable pg_dump custom-format file (pg_restore failed: ")
    assert line.endswith("; nothing changed")
    assert handles(schema_url) == ["keeper"]


def test_restoring_a_missing_file_is_one_line(run_task, schema_url, tmp_path):
    assert_one_line_error(
        run_task("db.restore", str(tmp_path / "none.dump"), env={"CONNECTION_URL": schema_url}), "none.dump: no such file"
    )


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
        assert (
            conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (urls.dbname(schema_url) + "\\_\\_%",)).fetchall() == []
        )


def test_an_older_pg_dump_on_path_is_passed_over_and_the_dump_works(inv, base_env, schema_url, tmp_path):
    # A system pg_dump older than the server refuses to dump it; the task uses the wheel's instead.
    folder = tmp_path / "bin"
    folder.mkdir()
    old = folder / "pg_dump"
    old.write_text(
        '#!/bin/sh\nif [ "$1" = --version ]; then echo "pg_dump (PostgreSQL) 15.8"; exit 0; fi\n'
        'echo "pg_dump: error: aborting because of server version mismatch" >&2\nexit 1\n'
    )
    old.chmod(old.stat().st_mode | stat.S_IXUSR)
    add_user(schema_url, "keeper")
    path = tmp_path / "out.dump"
    env = {"CONNECTION_URL": schema_url, "PATH": f"{folder}:{base_env['PATH']}"}
    result = inv("db.dump", "--output", str(path), env=env)
    assert result.returncode == 0, result.stderr
    listing = subprocess.run(
        [str(local_server.bin_dir() / "pg_restore"), "--list", str(path)], capture_output=True, text=True, check=True
    ).stdout
    assert "TABLE DATA public users" in listing


@pytest.mark.parametrize(
    "where, reason",
    [
        ("folder", "it is a folder; give a file name in it"),
        ("/proc/nope/x.dump", "No such file or directory"),
        ("/sys/x.dump", "Permission denied"),
        ("README.md/x.dump", "a part of it is a file, not a folder"),
        ("x" * 300 + ".dump", "File name too long"),
    ],
)
def test_dump_to_a_path_that_cannot_be_written_is_one_line(run_task, schema_url, tmp_path, where, reason):
    path = tmp_path if where == "folder" else Path(where)
    before = sorted(tmp_path.iterdir())
    result = run_task("db.dump", "--output", str(path), env={"CONNECTION_URL": schema_url})
    assert_one_line_error(result, f"error: cannot write the dump to {str(path)!r}: {reason}")
    assert sorted(tmp_path.iterdir()) == before and result.stdout == ""


def test_dump_to_a_name_with_a_nul_byte_is_one_line(schema_url, tmp_path):
    # No command line can carry a NUL byte; a caller of the library can.
    path = tmp_path / "a\0b.dump"
    with pytest.raises(DatabaseError) as failure:
        dump.dump(schema_url, path)
    assert str(failure.value) == f"cannot write the dump to {str(path)!r}: a file name cannot hold a NUL byte"
    assert list(tmp_path.iterdir()) == []


@settings(max_examples=examples(25), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(password=st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), min_size=1, max_size=20))
@example(password="d")
@example(password="pg_dump")
@example(password="two  spaces")
def test_the_password_goes_through_the_environment_never_argv(tmp_path, password):
    # A fake pg_dump on PATH, newer than any real one, records what it was given.
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    record = tmp_path / "record"
    fake = folder / "pg_dump"
    fake.write_text(
        f'#!/bin/sh\nif [ "$1" = --version ]; then echo "pg_dump (PostgreSQL) 99.0"; exit 0; fi\n'
        f'printf "%s\\n" "$@" > {record}\nprintf "%s" "$PGPASSWORD" > {record}.env\n'
        # as if the tool echoed the connection string it was given
        f'printf "pg_dump: error: refused; password=%s\\n" "$PGPASSWORD" >&2\nexit 1\n'
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    url = f"postgresql://postgres:{urls_quote(password)}@127.0.0.1:1/cruddur"
    old_path = os.environ["PATH"]
    os.environ["PATH"] = f"{folder}:{old_path}"
    try:
        with pytest.raises(DatabaseError) as failure:
            dump.dump(url, tmp_path / "out.dump")
    finally:
        os.environ["PATH"] = old_path
    message = str(failure.value)
    assert message.endswith("; password=" + MASK), message
    if not re.search(rf"(?<!\w){re.escape(password)}(?!\w)", "pg_dump: error: refused; password"):
        # The tool's own words stay as they are, whatever the password ("d" is in "pg_dump").
        assert message == "pg_dump failed on postgres@127.0.0.1:1/cruddur: error: refused; password=" + MASK
    argv = record.read_text(encoding="utf-8").splitlines()
    target = conninfo.conninfo_to_dict(argv[argv.index("--dbname") + 1])
    assert "password" not in target and target["host"] == "127.0.0.1"
    partial = partial_path(tmp_path / "out.dump")
    assert argv[:1] + argv[2:] == ["--dbname", "--format=custom", "--lock-wait-timeout=5000", f"--file={partial}"]
    assert Path(f"{record}.env").read_text(encoding="utf-8") == password
    assert not (tmp_path / "out.dump").exists()


def urls_quote(text):
    from urllib.parse import quote

    return quote(text, safe="")


def test_restoring_a_newer_servers_dump_into_an_older_server_says_why_in_one_line(inv, server_url, schema_url, tmp_path):
    with psycopg.connect(server_url) as conn:
        older = conn.info.server_version // 10000
    if older >= 18:
        pytest.skip(
            f"the test server is PostgreSQL {older}, not older than the embedded 18 that writes the dump;"
            " this runs where TEST_DATABASE_URL is an older server (CI's TCP pass, Debian's PostgreSQL 15)"
        )
    # The embedded PostgreSQL 18, on its own, writes a dump with a column only 18 knows (virtual).
    path = tmp_path / "from-18.dump"
    with temporary_pgdata("cruddur-pg18-") as pgdata:
        newer = local_server.start(pgdata, free_port())
        with psycopg.connect(newer, autocommit=True) as conn:
            conn.execute("CREATE DATABASE newer")
        with psycopg.connect(urls.with_dbname(newer, "newer")) as conn:
            conn.execute("CREATE TABLE prices (net int, gross int GENERATED ALWAYS AS (net * 2) VIRTUAL)")
        dump.dump(urls.with_dbname(newer, "newer"), path)
    add_user(schema_url, "keeper")
    line = assert_one_line_error(inv("db.restore", str(path), env={"CONNECTION_URL": schema_url}))
    assert f"this server is PostgreSQL {older}, older than the PostgreSQL 18 the dump was taken from:" in line
    assert "restore it into PostgreSQL 18 or newer" in line
    assert line.endswith(f"{urls.dbname(schema_url)!r} was left as it was")
    assert handles(schema_url) == ["keeper"]


def test_a_dump_is_readable_by_its_owner_only(schema_url, tmp_path):
    path = tmp_path / "new-folder" / "cruddur.dump"
    dump.dump(schema_url, path)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_dump_and_restore_show_a_progress_line_on_a_terminal_only(run_task, base_env, schema_url, tmp_path):
    from tests.helpers import Terminal

    name, dev = urls.dbname(schema_url), {"CONNECTION_URL": schema_url}
    path = tmp_path / "shown.dump"
    for args, shown_text in ((["db.dump", "--output", str(path)], f"dumping {name}"), (["db.restore", str(path)], f"restoring {name}")):
        terminal = Terminal(args, {**base_env, **dev, "TERM": "xterm"})
        code, shown, _ = terminal.finish()
        assert code == 0, shown
        assert shown_text in shown and "0:00:0" in shown  # the step, and the time elapsed
    piped = run_task("db.dump", "--output", str(tmp_path / "piped.dump"), env=dev)
    assert (piped.returncode, piped.stderr) == (0, "")  # nothing extra
    restored = run_task("db.restore", str(path), env=dev)
    assert (restored.returncode, restored.stderr) == (0, "")
