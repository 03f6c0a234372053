"""Database administration on a server: create, drop, load SQL files, replace a database through
a scratch copy and a swap, end sessions, wait for a server to answer."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import errors, sql

from ..errors import (
    CruddurError,
    DatabaseError,
    FileLockTimeout,
    NoSuchDatabase,
    ServerNotAnswering,
    SqlFileError,
    StatementFailed,
    SwapError,
    one_line,
)
from ..polling import Deadline
from ..timeouts import CONNECT_TIMEOUT, FILE_LOAD_LOCK_TIMEOUT, SWAP_LOCK_WAIT, SWAP_STEP_WAIT
from . import urls
from .connect import CLIENT_SESSION, advisory_lock, connect, lock_timeout_query, set_lock_timeout
from .sessions import BlockerWatch, held_by
from .sql_text import Statement, read_sql, split
from .statements import Query, describe, location, run_atomically

MAINTENANCE_DB = "postgres"


def _maintenance(url: str) -> psycopg.Connection:
    return connect(urls.with_dbname(url, MAINTENANCE_DB), autocommit=True)


def _refuse_maintenance_db(url: str) -> str:
    name = urls.dbname(url)
    if name == MAINTENANCE_DB:
        raise DatabaseError(f"the URL names the maintenance database {name!r}; point it at the app database")
    return name


def create_database(url: str, report: Callable[[str], None] | None = None) -> bool:
    """Create the URL's database on its server; False if it already existed.

    It takes the swap lock and first finishes or undoes a swap an interrupted rebuild left half
    done (what it did goes to `report`), so the name is never taken while a rebuilt or set-aside
    copy waits for it; a half-done swap that cannot be settled stops it (SwapError)."""
    name = _refuse_maintenance_db(url)
    with _maintenance(url) as conn:
        _take_swap_lock(conn, name, wait=SWAP_LOCK_WAIT)
        _report(report, name, _recover(conn, name))
        return _create(conn, name)


def drop_database(url: str, report: Callable[[str], None] | None = None) -> int | None:
    """Drop the URL's database, ending the sessions that hold it: how many client sessions it
    ended, or None if it did not exist.

    With the swap lock held, a half-done swap is settled first (what was done goes to `report`).
    When the copies an interrupted rebuild left do not fit together (the app database is not the
    one the swap put in), this is the way out SwapError names: the app database is dropped, and
    the copy the swap left (the rebuilt one, else the set-aside one) then takes its name."""
    name = _refuse_maintenance_db(url)
    with _maintenance(url) as conn:
        _take_swap_lock(conn, name, wait=SWAP_LOCK_WAIT)
        try:
            _report(report, name, _recover(conn, name))
            settle = False
        except SwapError as e:
            if not e.settled_by_drop:
                raise
            settle = True
        try:
            (holders,) = conn.execute(
                sql.SQL("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND ({})").format(sql.SQL(CLIENT_SESSION)),
                (name,),
            ).fetchone()
        except psycopg.Error as e:
            raise DatabaseError(f"cannot list the sessions on {name!r}: {one_line(e)}") from None
        ended = holders if _drop(conn, name) else None
        if settle:
            _report(report, name, _recover(conn, name))
        return ended


def _report(report: Callable[[str], None] | None, name: str, done: str | None) -> None:
    if done and report:
        report(f"{name}: {done}")


def rebuild_database(url: str, files: list[tuple[Path, str]]) -> bool:
    """Replace the URL's database with a fresh one built from (path, label) SQL files, each in
    its own transaction; whether one existed before. See replace_database for the swap."""
    texts = [(read_sql(path, label), label) for path, label in files]
    return replace_database(url, lambda scratch_url: _run_texts(scratch_url, texts))


def replace_database(url: str, build: Callable[[str], None]) -> bool:
    """Replace the URL's database with one that build(scratch_url) fills; whether one existed.

    build runs on a scratch database (<name>__rebuild), which takes the app database's place only
    when build returned: on any failure the app database is left exactly as it was and the scratch
    one is dropped. The swap marks the scratch database complete (a comment on it naming the
    database it replaces, by oid), renames the app database aside (<name>__old), renames the
    scratch one in, drops the old one and clears the mark: so at every instant either the old or
    the new database is whole, and a swap cut short (a kill) is finished or undone by the next
    call here or to recover_swap, from those recorded facts rather than from which names exist.
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
            return _swap_in(conn, name, scratch, aside, reached)
        except CruddurError as e:
            e.args = (f"{e}; {_clean_up_after_failure(conn, name, reached[0])}",)
            raise
        except BaseException:
            _clean_up_after_failure(conn, name, reached[0])
            raise


_RENAME_ATTEMPTS = 5
# The comment that marks a complete scratch database: the JSON after it names the database it is
# built for and the oid of the app database it replaces (null when there was none).
SWAP_MARK = "cruddur swap: "


def swap_names(name: str) -> tuple[str, str]:
    """The scratch and the set-aside names of a database being replaced (within 63 bytes)."""
    base = name[:50]
    return f"{base}__rebuild", f"{base}__old"


def recover_swap(url: str) -> str | None:
    """Finish or undo a swap of the URL's database that an interrupted rebuild left half done;
    what was done, or None when there was nothing to do (or a rebuild is running right now, or the
    server cannot be reached: the caller's own connection then says why, naming its database).
    A rename or drop that fails raises its one-line DatabaseError, and SwapError (nothing dropped)
    says when the copies left do not fit together."""
    name = _refuse_maintenance_db(url)
    try:
        conn = _maintenance(url)
    except ServerNotAnswering:
        raise  # the caller's own connection would wait as long again
    except DatabaseError:
        return None
    with conn:
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
        found = _copies(conn, name)
        return bool(set(found) - {name}) or (name in found and found[name].mark is not None)


@dataclass(frozen=True)
class _Copy:
    oid: int
    mark: dict | None  # the swap's record on a complete rebuild, None on any other database


def _copies(conn: psycopg.Connection, name: str) -> dict[str, _Copy]:
    """The app database and the swap's two copies that exist, with the swap's marks."""
    rows = conn.execute(
        "SELECT datname, oid, shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = ANY(%s)",
        ([name, *swap_names(name)],),
    ).fetchall()
    return {datname: _Copy(oid, _read_mark(comment, name)) for datname, oid, comment in rows}


def _read_mark(comment: str | None, name: str) -> dict | None:
    if not comment or not comment.startswith(SWAP_MARK):
        return None
    try:
        mark = json.loads(comment.removeprefix(SWAP_MARK))
    except ValueError:
        return None
    return mark if isinstance(mark, dict) and mark.get("of") == name else None


def _mark(conn: psycopg.Connection, database: str, mark: dict | None) -> None:
    text = None if mark is None else SWAP_MARK + json.dumps(mark, sort_keys=True)
    try:
        conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(database), sql.Literal(text)))
    except psycopg.Error as e:
        raise DatabaseError(f"cannot record the swap's progress on database {database!r}: {one_line(e)}") from None


def _swap_in(conn: psycopg.Connection, name: str, scratch: str, aside: str, reached: list[str]) -> bool:
    app = _copies(conn, name).get(name)
    # From here on the scratch database is a whole copy, and recovery knows it.
    _mark(conn, scratch, {"of": name, "replaces": app.oid if app else None})
    _stop_here_in_tests("built")
    if app:
        _rename(conn, name, aside, end_sessions=True)
        reached[0] = "aside"
        _stop_here_in_tests("aside")
    _rename(conn, scratch, name)
    reached[0] = "in"
    _stop_here_in_tests("in")
    _drop(conn, aside)
    _mark(conn, name, None)
    return app is not None


def _recover(conn: psycopg.Connection, name: str) -> str | None:
    """With the swap lock held: bring leftovers of an interrupted swap back to one whole database.

    It acts on what the swap recorded, never on names alone: a scratch database without the mark
    is half built (dropped); a marked one is whole. The set-aside database is dropped only when
    the app database is the marked rebuild that replaced exactly it. Anything else keeps every
    copy and raises SwapError saying which holds what."""
    scratch, aside = swap_names(name)
    found = _copies(conn, name)
    app, new, old = found.get(name), found.get(scratch), found.get(aside)
    done = []
    if new and new.mark is None:
        _drop(conn, scratch)  # cut short while it was being built: never a whole copy
        new = None
        done.append(f"dropped the leftover {scratch!r}")
    if app is None and new:
        _rename(conn, scratch, name)
        app, new = new, None
        done.append(f"finished an interrupted swap: the rebuilt database is now {name!r}")
    elif app is None and old:
        _rename(conn, aside, name)
        app, old = old, None
        done.append(f"undid an interrupted swap: {name!r} is the old database again")
    if app and new:
        if old is None and app.mark is None and new.mark.get("replaces") == app.oid:
            _drop(conn, scratch)  # complete, but cut short before the app database was set aside
            new = None
            done.append(f"dropped the leftover {scratch!r}")
        else:
            raise _ambiguous(conn, name, app, new, old)
    if app and old:
        if app.mark is None or app.mark.get("replaces") != old.oid:
            raise _ambiguous(conn, name, app, new, old)
        _drop(conn, aside)
        done.append(f"dropped the leftover {aside!r}")
    if app and app.mark is not None:
        _mark(conn, name, None)
    return "; ".join(done) or None


def _ambiguous(conn: psycopg.Connection, name: str, app: _Copy, new: _Copy | None, old: _Copy | None) -> SwapError:
    scratch, aside = swap_names(name)
    holds = [f"{name!r} ({_size(conn, app.oid)}, not the copy the swap would put in: made since)"]
    if new:
        holds.append(f"{scratch!r} ({_size(conn, new.oid)}, the complete rebuild)")
    if old:
        holds.append(f"{aside!r} ({_size(conn, old.oid)}, the database as it was before the rebuild)")
    keeper = scratch if new else aside
    return SwapError(
        f"an interrupted db.setup or db.restore left copies that do not fit together, so none was dropped: {', '.join(holds)}."
        f" To keep {keeper!r} as {name!r}: inv db.drop (with --prod on production), which drops {name!r} only and puts"
        f" {keeper!r} in its place",
        settled_by_drop=True,
    )


def _size(conn: psycopg.Connection, oid: int) -> str:
    try:
        return conn.execute("SELECT pg_size_pretty(pg_database_size(%s::oid))", (oid,)).fetchone()[0]
    except psycopg.Error:
        return "size unknown"  # no CONNECT right on it


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
    taken = advisory_lock(conn, f"cruddur rebuild {name}", wait, what=f"another task that replaces, creates or drops {name!r} to end")
    if not taken and wait is not None:
        raise DatabaseError(
            f"another task that replaces, creates or drops {name!r} (db.setup, db.restore, ...) is still running after {wait:g}s;"
            " try again when it ends"
        )
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

    A session of another role stays (ended False) unless this role may signal it; one already
    gone by the time it is signalled is left out."""
    with connect(url, autocommit=True) as conn:
        return _end_sessions(conn, conn.info.dbname)


def _end_sessions(conn: psycopg.Connection, name: str) -> list[tuple[int, bool]]:
    """End the client sessions on database `name` other than this one: [(pid, ended)], leaving out
    those already gone when signalled."""
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
            results.append((pid, False))  # another role's session
            continue
        except psycopg.Error as e:
            raise DatabaseError(f"cannot end session {pid}: {one_line(e)}") from None
        # False: no such backend any more. A session ended a moment ago (by an earlier db.kill,
        # say) stays listed until its process exits; it was not this call's to end.
        if ended:
            results.append((pid, True))
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
