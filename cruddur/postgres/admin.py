"""Database administration on a server: create, drop, load SQL files, replace a database through
a scratch copy and a swap, end sessions, wait for a server to answer."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import psycopg
from psycopg import errors, sql

from ..errors import CruddurError, DatabaseError, FileLockTimeout, NoSuchDatabase, SqlFileError, one_line
from ..polling import Deadline
from ..timeouts import CONNECT_TIMEOUT, FILE_LOAD_LOCK_TIMEOUT, SWAP_LOCK_WAIT, SWAP_STEP_WAIT
from . import urls
from .connect import CLIENT_SESSION, advisory_lock, connect, lock_timeout_query, set_lock_timeout
from .sessions import BlockerWatch, held_by
from .sql_text import Statement, read_sql, split
from .statements import Query, StatementFailed, describe, location, run_atomically

MAINTENANCE_DB = "postgres"


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
    """Replace the URL's database with a fresh one built from (path, label) SQL files, each in
    its own transaction; whether one existed before. See replace_database for the swap."""
    texts = [(read_sql(path, label), label) for path, label in files]
    return replace_database(url, lambda scratch_url: _run_texts(scratch_url, texts))


def replace_database(url: str, build: Callable[[str], None]) -> bool:
    """Replace the URL's database with one that build(scratch_url) fills; whether one existed.

    build runs on a scratch database (<name>__rebuild), which takes the app database's place only
    when build returned: on any failure the app database is left exactly as it was and the scratch
    one is dropped. The swap renames the app database aside (<name>__old), renames the scratch one
    in, then drops the old one, so at every instant either the old or the new database is whole;
    a swap cut short (a kill) is finished or undone by the next call here or to recover_swap.
    One rebuild at a time per database: a second one waits for the first (SWAP_LOCK_WAIT)."""
    name = _refuse_maintenance_db(url)
    scratch, aside = swap_names(name)
    with _maintenance(url) as conn:
        _take_swap_lock(conn, name, wait=SWAP_LOCK_WAIT)
        _recover(conn, name)
        _create(conn, scratch)
        reached = ["build"]  # the last step taken, for the message if a later one fails
        try:
            build(urls.with_dbname(url, scratch))
            _stop_here_in_tests("built")
            return _swap_in(conn, name, scratch, aside, reached)
        except CruddurError as e:
            e.args = (f"{e}; {_clean_up_after_failure(conn, name, reached[0])}",)
            raise
        except BaseException:
            _clean_up_after_failure(conn, name, reached[0])
            raise


_RENAME_ATTEMPTS = 5


def swap_names(name: str) -> tuple[str, str]:
    """The scratch and the set-aside names of a database being replaced (within 63 bytes)."""
    base = name[:50]
    return f"{base}__rebuild", f"{base}__old"


def recover_swap(url: str) -> str | None:
    """Finish or undo a swap of the URL's database that an interrupted rebuild left half done;
    what was done, or None when there was nothing to do (or a rebuild is running right now)."""
    name = _refuse_maintenance_db(url)
    with _maintenance(url) as conn:
        if not _take_swap_lock(conn, name, wait=None):
            return None  # the rebuild that holds it finishes its own swap
        return _recover(conn, name)


def interrupted_swap(url: str) -> bool:
    """Whether an interrupted rebuild left a swap of the URL's database half done, found without
    renaming or dropping anything (False while a rebuild is running: it finishes its own swap)."""
    name = _refuse_maintenance_db(url)
    with _maintenance(url) as conn:
        if not _take_swap_lock(conn, name, wait=None):
            return False
        found = conn.execute("SELECT count(*) FROM pg_database WHERE datname = ANY(%s)", (list(swap_names(name)),)).fetchone()[0]
        return found > 0


def _swap_in(conn: psycopg.Connection, name: str, scratch: str, aside: str, reached: list[str]) -> bool:
    existed = _exists(conn, name)
    if existed:
        _rename(conn, name, aside, end_sessions=True)
        reached[0] = "aside"
        _stop_here_in_tests("aside")
    _rename(conn, scratch, name)
    reached[0] = "in"
    _stop_here_in_tests("in")
    _drop(conn, aside)
    return existed


def _recover(conn: psycopg.Connection, name: str) -> str | None:
    """With the swap lock held: bring leftovers of an interrupted swap back to one whole database.

    The scratch database is renamed in only after its build succeeded, and the app database is set
    aside only after that: so a scratch database next to a set-aside one is complete, and one
    alone may be half built."""
    scratch, aside = swap_names(name)
    present = {row[0] for row in conn.execute("SELECT datname FROM pg_database WHERE datname = ANY(%s)", ([name, scratch, aside],))}
    done = []
    if name not in present and aside in present:
        # Cut short after the app database was set aside: put a whole one back under its name.
        if scratch in present:
            _rename(conn, scratch, name)
            present.discard(scratch)
            done.append(f"finished an interrupted swap: the rebuilt database is now {name!r}")
        else:
            _rename(conn, aside, name)
            present.discard(aside)
            done.append(f"undid an interrupted swap: {name!r} is the old database again")
    for leftover in (scratch, aside):
        if leftover in present:
            _drop(conn, leftover)
            done.append(f"dropped the leftover {leftover!r}")
    return "; ".join(done) or None


def _clean_up_after_failure(conn: psycopg.Connection, name: str, reached: str) -> str:
    """Bring a failed rebuild's leftovers back to one whole database (as _recover does); what the
    user has now, given the last step of the swap that was `reached` (build, aside, in)."""
    scratch, aside = swap_names(name)
    try:
        _recover(conn, name)
    except (psycopg.Error, DatabaseError):
        # The failure already raised is the one to report; the next rebuild or db task cleans up.
        if reached == "aside":
            return f"{name!r} is missing for now (the old database is {aside!r}, the new one {scratch!r}): the next db task finishes the swap (on --prod, a write task once you confirm)"
        if reached == "in":
            return f"{name!r} was replaced; the old database is still there as {aside!r} and the next db task drops it"
        return f"{name!r} was left as it was"
    if reached == "aside":
        return f"{name!r} was replaced all the same: the swap was finished"
    if reached == "in":
        return f"{name!r} was replaced; the old database was dropped on a second try"
    return f"{name!r} was left as it was"


def _take_swap_lock(conn: psycopg.Connection, name: str, wait: float | None) -> bool:
    """The maintenance database's advisory lock for rebuilding `name`: wait up to `wait` seconds
    (None: only try). Held until the connection closes."""
    taken = advisory_lock(conn, f"cruddur rebuild {name}", wait, what=f"another db.setup or db.restore of {name!r} to end")
    if not taken and wait is not None:
        raise DatabaseError(f"another db.setup or db.restore of {name!r} is still running after {wait:g}s; try again when it ends")
    # The renames and drops that follow wait for the database's lock no longer than this.
    set_lock_timeout(conn, SWAP_STEP_WAIT)
    return taken


def _exists(conn: psycopg.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def _rename(conn: psycopg.Connection, old: str, new: str, end_sessions: bool = False) -> None:
    statement = sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(old), sql.Identifier(new))
    for attempt in range(_RENAME_ATTEMPTS):
        try:
            if end_sessions:
                _end_sessions(conn, old)
            conn.execute(statement)
            return
        except errors.ObjectInUse:
            if not end_sessions or attempt == _RENAME_ATTEMPTS - 1:
                raise DatabaseError(f"cannot rename database {old!r} to {new!r}: other sessions keep connecting to it") from None
            time.sleep(0.05 * (attempt + 1))
        except psycopg.Error as e:
            raise DatabaseError(f"cannot rename database {old!r} to {new!r}: {one_line(e)}") from None


def _stop_here_in_tests(step: str) -> None:
    # Tests kill the process at each step of the swap to prove the next task recovers.
    if os.environ.get("CRUDDUR_TEST_KILL_AT_SWAP_STEP") == step:
        os.kill(os.getpid(), signal.SIGKILL)


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
        existed = _exists(conn, name)
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    except psycopg.Error as e:
        raise DatabaseError(f"cannot drop database {name!r}: {one_line(e)}") from None
    return existed


def run_sql_file(
    url: str, path: Path, label: str | None = None, lock_timeout: float = FILE_LOAD_LOCK_TIMEOUT, after: Sequence[Query] = ()
) -> None:
    """Run a whole .sql file in one transaction: all of it, or (on SqlFileError) none of it.
    `after`: (query, params) run in the same transaction once the file's statements ran.

    A lock another session holds is waited for at most `lock_timeout` seconds; then the error
    names that session."""
    run_sql_files(url, [(path, label or str(path))], lock_timeout, after)


def run_sql_files(
    url: str, files: list[tuple[Path, str]], lock_timeout: float = FILE_LOAD_LOCK_TIMEOUT, after: Sequence[Query] = ()
) -> None:
    """Run (path, label) files in order on one connection, each in its own transaction (with the
    `after` queries in the first one's).

    The first failure stops the run: that file is rolled back, the ones before it stay."""
    _run_texts(url, [(read_sql(path, label), label) for path, label in files], lock_timeout, after)


def _run_texts(url: str, texts: list[tuple[str, str]], lock_timeout: float = FILE_LOAD_LOCK_TIMEOUT, after: Sequence[Query] = ()) -> None:
    # Split every file before running any: an unterminated quote in the last stops the first too.
    files = [(split(text, label), label) for text, label in texts]
    with connect(url, autocommit=True) as conn, BlockerWatch(url, conn.info.backend_pid, lock_timeout) as watch:
        for index, (statements, label) in enumerate(files):
            _run(conn, watch, statements, label, lock_timeout, after if index == 0 else ())


def _run(conn: psycopg.Connection, watch: BlockerWatch, statements: list[Statement], label: str, lock_timeout: float, after) -> None:
    """Run one file's statements in a transaction, waiting at most lock_timeout for each lock; a
    lock timeout names the session that held the lock."""
    try:
        with watch.statement():
            run_atomically(conn, statements, before=[lock_timeout_query(lock_timeout, local=True)], after=after)
    except StatementFailed as e:
        if isinstance(e.error, errors.LockNotAvailable):
            raise FileLockTimeout(
                f"{location(label, e)}: waited {lock_timeout:g}s for a lock held by {held_by(watch.found)}; nothing of it was applied"
                " (end it with inv db.kill, or allow longer with --lock-timeout)",
                watch.found,
            ) from None
        raise SqlFileError(f"{describe(label, e)}; nothing of it was applied") from None


def terminate_other_sessions(url: str) -> list[tuple[int, bool]]:
    """End the other client sessions on the URL's database, never this one: [(pid, ended)].

    A session of another role stays (ended False) unless this role may signal it."""
    with connect(url, autocommit=True) as conn:
        return _end_sessions(conn, conn.info.dbname)


def _end_sessions(conn: psycopg.Connection, name: str) -> list[tuple[int, bool]]:
    """End the client sessions on database `name` other than this one: [(pid, ended)]."""
    query = sql.SQL("SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid() AND ({}) ORDER BY pid").format(
        sql.SQL(CLIENT_SESSION)
    )
    try:
        pids = [pid for (pid,) in conn.execute(query, (name,))]
    except psycopg.Error as e:
        raise DatabaseError(f"cannot list the other sessions: {one_line(e)}") from None
    results = []
    for pid in pids:
        try:
            ended = conn.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]
        except errors.InsufficientPrivilege:
            ended = False  # another role's session
        except psycopg.Error as e:
            raise DatabaseError(f"cannot end session {pid}: {one_line(e)}") from None
        results.append((pid, bool(ended)))
    return results


def wait_until_ready(url: str, timeout: float, interval: float = 0.25) -> float:
    """Wait until the URL's server accepts connections; the seconds it took, or DatabaseError
    naming the URL's own database once `timeout` seconds have passed.

    A missing app database still counts as ready: the server answered."""
    deadline = Deadline(timeout)
    while True:
        try:
            connect(url, timeout=min(CONNECT_TIMEOUT, deadline.left())).close()
            return deadline.elapsed()
        except NoSuchDatabase:
            return deadline.elapsed()
        except DatabaseError as e:
            if not deadline.pause(interval):
                raise DatabaseError(f"gave up after {deadline.elapsed():.1f}s: {e}") from None
