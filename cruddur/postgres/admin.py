"""Database administration on a server: create, drop, load SQL files, end sessions."""

from __future__ import annotations

import time
from contextlib import nullcontext
from pathlib import Path

import psycopg
from psycopg import errors, sql

from . import urls
from .connect import CLIENT_SESSION, CONNECT_TIMEOUT, connect
from .sessions import BlockerWatch
from ..errors import DatabaseError, NoSuchDatabase, SqlFileError, one_line

MAINTENANCE_DB = "postgres"
LOCK_TIMEOUT = 5.0  # seconds a file load waits for a lock another session holds


def _maintenance(url: str) -> psycopg.Connection:
    return connect(urls.with_dbname(url, MAINTENANCE_DB), autocommit=True)


def _refuse_maintenance_db(url: str) -> str:
    name = urls.dbname(url)
    if name == MAINTENANCE_DB:
        raise DatabaseError(f"the URL names the maintenance database {name!r}; point it at the app database")
    return name


def create_database(url: str) -> bool:
    """Create the URL's database on its server; False if it already existed."""
    name = _refuse_maintenance_db(url)
    with _maintenance(url) as conn:
        return _create(conn, name)


def drop_database(url: str) -> int | None:
    """Drop the URL's database, ending the sessions that hold it: how many client sessions it
    ended, or None if it did not exist."""
    name = _refuse_maintenance_db(url)
    with _maintenance(url) as conn:
        try:
            (holders,) = conn.execute(
                sql.SQL("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND ({})").format(sql.SQL(CLIENT_SESSION)),
                (name,),
            ).fetchone()
        except psycopg.Error as e:
            raise DatabaseError(f"cannot list the sessions on {name!r}: {one_line(e)}") from None
        return holders if _drop(conn, name) else None


def rebuild_database(url: str, files: list[tuple[Path, str]]) -> bool:
    """Replace the URL's database with a fresh one built from (path, label) SQL files; whether
    one existed before.

    The files run in a scratch database first, which takes the app database's place only when all
    of them succeeded: on any failure the app database is left exactly as it was."""
    name = _refuse_maintenance_db(url)
    scratch = f"{name[:50]}__rebuild"
    texts = [(_read(path, label), label) for path, label in files]
    with _maintenance(url) as conn:
        _drop(conn, scratch)
        _create(conn, scratch)
    try:
        with connect(urls.with_dbname(url, scratch)) as conn:
            for text, label in texts:
                _run(conn, text, label)
    except BaseException:
        with _maintenance(url) as conn:
            _drop(conn, scratch)
        raise
    with _maintenance(url) as conn:
        existed = _drop(conn, name)
        try:
            conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(scratch), sql.Identifier(name)))
        except psycopg.Error as e:
            raise DatabaseError(f"cannot rename the rebuilt database to {name!r}: {one_line(e)}") from None
    return existed


def _create(conn: psycopg.Connection, name: str) -> bool:
    try:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except errors.DuplicateDatabase:
        return False
    except psycopg.Error as e:
        raise DatabaseError(f"cannot create database {name!r}: {one_line(e)}") from None
    return True


def _drop(conn: psycopg.Connection, name: str) -> bool:
    try:
        existed = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    except psycopg.Error as e:
        raise DatabaseError(f"cannot drop database {name!r}: {one_line(e)}") from None
    return existed


def run_sql_file(url: str, path: Path, label: str | None = None, lock_timeout: float = LOCK_TIMEOUT) -> None:
    """Run a whole .sql file in one transaction: all of it, or (on SqlFileError) none of it.

    A lock another session holds is waited for at most `lock_timeout` seconds; then the error
    names that session."""
    run_sql_files(url, [(path, label or str(path))], lock_timeout)


def run_sql_files(url: str, files: list[tuple[Path, str]], lock_timeout: float = LOCK_TIMEOUT) -> None:
    """Run (path, label) files in order on one connection, each in its own transaction.

    The first failure stops the run: that file is rolled back, the ones before it stay."""
    texts = [(_read(path, label), label) for path, label in files]
    with connect(url) as conn:
        for text, label in texts:
            _run(conn, text, label, url, lock_timeout)


def _run(conn: psycopg.Connection, text: str, label: str, url: str | None = None, lock_timeout: float = LOCK_TIMEOUT) -> None:
    """Run one file's text in a transaction, waiting at most lock_timeout for each lock; with
    the url, a lock timeout names the session that held the lock."""
    watch = BlockerWatch(url, conn.info.backend_pid, after=lock_timeout / 2) if url else nullcontext()
    try:
        with conn.transaction():
            conn.execute("SELECT set_config('lock_timeout', %s, true)", (f"{max(1, round(lock_timeout * 1000))}ms",))
            with watch:
                conn.execute(text.encode())
    except errors.LockNotAvailable:
        held_by = ", ".join(str(b) for b in getattr(watch, "found", [])) or "another session"
        raise SqlFileError(
            f"{label}: waited {lock_timeout:g}s for a lock held by {held_by}; nothing of it was applied"
            " (end it with inv db.kill, or allow longer with --lock-timeout)"
        ) from None
    except psycopg.Error as e:
        raise SqlFileError(f"{_location(label, text, e)}: {_postgres_message(e)}; nothing of it was applied") from None


def _read(path: Path, label: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as e:
        raise SqlFileError(f"{label}: cannot read it: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise SqlFileError(f"{label}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def _location(label: str, text: str, error: psycopg.Error) -> str:
    position = getattr(error.diag, "statement_position", None)
    if position and position.isdigit():
        offset = int(position) - 1
        line = text.count("\n", 0, offset) + 1
        column = offset - (text.rfind("\n", 0, offset) + 1) + 1
        return f"{label}:{line}:{column}"
    return label


def _postgres_message(error: psycopg.Error) -> str:
    diag = error.diag
    message = diag.message_primary or one_line(error)
    if diag.message_detail:
        message += f" ({one_line(diag.message_detail)})"
    return f"{diag.sqlstate or 'error'} {message}" if diag.sqlstate else message


def terminate_other_sessions(url: str) -> list[tuple[int, bool]]:
    """End the other client sessions on the URL's database, never this one: [(pid, ended)].

    A session of another role stays (ended False) unless this role may signal it."""
    with connect(url, autocommit=True) as conn:
        try:
            pids = _other_sessions(conn)
        except psycopg.Error as e:
            raise DatabaseError(f"cannot list the other sessions: {one_line(e)}") from None
        results = []
        for pid in pids:
            try:
                ended = conn.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]
            except errors.InsufficientPrivilege:
                ended = False
            except psycopg.Error as e:
                raise DatabaseError(f"cannot end session {pid}: {one_line(e)}") from None
            results.append((pid, bool(ended)))
    return results


def _other_sessions(conn: psycopg.Connection) -> list[int]:
    query = sql.SQL(
        "SELECT pid FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid() AND ({}) ORDER BY pid"
    ).format(sql.SQL(CLIENT_SESSION))
    return [pid for (pid,) in conn.execute(query)]


def wait_until_ready(url: str, timeout: float, interval: float = 0.25) -> float:
    """Wait until the URL's server accepts connections; the seconds it took, or DatabaseError
    naming the URL's own database once `timeout` seconds have passed.

    A missing app database still counts as ready: the server answered."""
    started = time.monotonic()
    deadline = started + timeout
    while True:
        try:
            connect(url, timeout=max(0.0, min(CONNECT_TIMEOUT, deadline - time.monotonic()))).close()
            return time.monotonic() - started
        except NoSuchDatabase:
            return time.monotonic() - started
        except DatabaseError as e:
            left = deadline - time.monotonic()
            if left <= 0:
                raise DatabaseError(f"gave up after {time.monotonic() - started:.1f}s: {e}") from None
        time.sleep(min(interval, left))
