"""Schema migrations in dbmate's format: read the files, plan, apply, roll back, report status.

Files: sql/migrations/<version>_<name>.sql, version = UTC YYYYMMDDHHMMSS, with a `-- migrate:up`
and a `-- migrate:down` section (`transaction:false` after a marker runs that section outside a
transaction). Applied versions live in dbmate's public.schema_migrations(version), so dbmate and
this runner can take turns on one database; the extra columns have defaults for dbmate's inserts.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import psycopg
from psycopg import errors, sql

from .admin import describe_sql_error, run_sql_files
from .connect import connect
from ..errors import MigrationError, SqlFileError, one_line

LOCK_TIMEOUT = 5.0  # seconds a migration's statement may queue for a table lock
RUN_LOCK_WAIT = 120.0  # seconds a run waits for another run on the same database to end

_FILE = re.compile(r"^(\d+)_(.*)\.sql$")  # dbmate's rule; other files in the folder are ignored
_MARKER = re.compile(r"^--\s*migrate:(up|down)\b(.*)$")
_NAME = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
_RUN_LOCK = "cruddur schema_migrations"

TABLE = """
CREATE TABLE IF NOT EXISTS public.schema_migrations (version varchar(128) PRIMARY KEY);
ALTER TABLE public.schema_migrations
  ADD COLUMN IF NOT EXISTS applied_at timestamptz DEFAULT now(),
  ADD COLUMN IF NOT EXISTS checksum text,
  ADD COLUMN IF NOT EXISTS duration_ms double precision;
"""

APPLIED = "applied"
PENDING = "pending"
CHANGED = "applied-but-file-changed"
MISSING = "applied-but-file-missing"


@dataclass(frozen=True)
class Section:
    sql: str
    transaction: bool
    first_line: int  # the file's line where sql starts

    @property
    def empty(self) -> bool:
        return all(not line.strip() or line.lstrip().startswith("--") for line in self.sql.splitlines())


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    label: str  # the file as messages name it, e.g. sql/migrations/20260101000000_add_bio.sql
    checksum: str
    up: Section
    down: Section


@dataclass(frozen=True)
class Status:
    version: str
    name: str
    state: str
    applied_at: datetime | None


@dataclass(frozen=True)
class Applied:
    version: str
    name: str
    seconds: float


def parse(text: str, version: str, name: str, label: str) -> Migration:
    """One migration file's text, split into its up and down sections as dbmate does."""
    sections: dict[str, Section] = {}
    lines = text.split("\n")
    starts = []
    for number, line in enumerate(lines):
        match = _MARKER.match(line.rstrip("\r"))
        if match:
            starts.append((number, match.group(1), match.group(2).split()))
    for number, line in enumerate(lines[: starts[0][0] if starts else len(lines)]):
        if line.strip() and not line.lstrip().startswith("--"):
            raise MigrationError(f"{label}:{number + 1}: SQL before '-- migrate:up'; every statement belongs to a section")
    if not starts or starts[0][1] != "up":
        raise MigrationError(f"{label}: no '-- migrate:up' section first (dbmate's format: '-- migrate:up', then '-- migrate:down')")
    for index, (number, kind, options) in enumerate(starts):
        if kind in sections:
            raise MigrationError(f"{label}:{number + 1}: a second '-- migrate:{kind}' section")
        transaction = True
        for option in options:
            key, _, value = option.partition(":")
            if key != "transaction" or value not in ("true", "false"):
                raise MigrationError(f"{label}:{number + 1}: unknown option {option!r} (only transaction:false)")
            transaction = value == "true"
        end = starts[index + 1][0] if index + 1 < len(starts) else len(lines)
        sections[kind] = Section("\n".join(lines[number + 1 : end]), transaction, number + 2)
    down = sections.get("down") or Section("", True, len(lines) + 1)
    checksum = hashlib.sha256(text.encode()).hexdigest()
    return Migration(version, name, label, checksum, sections["up"], down)


def load(directory: Path, label_root: Path | None = None) -> list[Migration]:
    """Every migration file in the folder, in version order (a missing folder has none)."""
    found = {}
    try:
        paths = sorted(directory.iterdir())
    except FileNotFoundError:
        return []
    except OSError as e:
        raise MigrationError(f"{directory}: cannot list it: {e.strerror}") from None
    for path in paths:
        match = _FILE.match(path.name)
        if not match or not path.is_file():
            continue
        version, name = match.groups()
        label = str(path.relative_to(label_root)) if label_root and path.is_relative_to(label_root) else str(path)
        if version in found:
            raise MigrationError(f"{label}: version {version} is also {found[version].label}; versions must be unique")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise MigrationError(f"{label}: cannot read it: {getattr(e, 'strerror', None) or e}") from None
        found[version] = parse(text, version, name, label)
    return [found[version] for version in sorted(found, key=_order)]


def _order(version: str) -> tuple[int, str]:
    # dbmate compares versions as numbers; the fixed width makes that the string order too.
    return (len(version.lstrip("0")), version.lstrip("0"))


def new_migration(directory: Path, name: str, now: datetime | None = None) -> Path:
    """Write an empty migration with both sections; its path."""
    if not _NAME.match(name):
        raise MigrationError(f"migration name {name!r}: use lowercase words joined by underscores, e.g. add_bio_to_users")
    version = (now or datetime.now(timezone.utc)).strftime("%Y%m%d%H%M%S")
    directory.mkdir(parents=True, exist_ok=True)
    for existing in directory.glob(f"{version}_*.sql"):
        raise MigrationError(f"{existing.name} already has version {version}; wait a second and try again")
    path = directory / f"{version}_{name}.sql"
    path.write_text("-- migrate:up\n\n\n-- migrate:down\n\n")
    return path


def read_applied(conn: psycopg.Connection) -> dict[str, dict]:
    """schema_migrations' rows by version; empty when there is no table (it is never created here)."""
    if conn.execute("SELECT to_regclass('public.schema_migrations')").fetchone()[0] is None:
        return {}
    cursor = conn.execute("SELECT * FROM public.schema_migrations")
    names = [column.name for column in cursor.description]
    return {row["version"]: row for row in (dict(zip(names, values)) for values in cursor)}


def inspect(url: str, directory: Path, label_root: Path | None = None) -> tuple[list[Migration], dict[str, dict]]:
    """The migration files and the applied rows, read without a lock and without creating anything."""
    migrations = load(directory, label_root)
    with connect(url, autocommit=True) as conn:
        return migrations, read_applied(conn)


def status(url: str, directory: Path, label_root: Path | None = None) -> list[Status]:
    """Every version, from the files and the table, in version order."""
    return statuses(*inspect(url, directory, label_root))


def statuses(migrations: list[Migration], applied: dict[str, dict]) -> list[Status]:
    rows = []
    for migration in migrations:
        row = applied.get(migration.version)
        if row is None:
            rows.append(Status(migration.version, migration.name, PENDING, None))
            continue
        # A version dbmate applied has no checksum to compare.
        changed = row.get("checksum") not in (None, migration.checksum)
        rows.append(Status(migration.version, migration.name, CHANGED if changed else APPLIED, row.get("applied_at")))
    known = {m.version for m in migrations}
    for version, row in applied.items():
        if version not in known:
            rows.append(Status(version, "", MISSING, row.get("applied_at")))
    return sorted(rows, key=lambda row: _order(row.version))


def plan(migrations: list[Migration], applied: dict[str, dict], to: str | None = None, allow_out_of_order: bool = False) -> list[Migration]:
    """The pending migrations to apply, in order, up to and including version `to`.

    A pending version older than the newest applied one is refused unless allow_out_of_order."""
    if to is not None and to not in {m.version for m in migrations}:
        raise MigrationError(f"--to {to}: no migration file has that version")
    pending = [m for m in migrations if m.version not in applied and (to is None or _order(m.version) <= _order(to))]
    newest = max(applied, key=_order, default=None)
    late = [m for m in pending if newest is not None and _order(m.version) < _order(newest)]
    if late and not allow_out_of_order:
        raise MigrationError(
            f"{late[0].label} is pending but older than the newest applied version {newest}"
            " (a branch merged late?); check it, then run with --allow-out-of-order"
        )
    return pending


def changed_files(migrations: list[Migration], applied: dict[str, dict]) -> list[Migration]:
    """Applied migrations whose file no longer matches the checksum recorded when it ran."""
    return [m for m in migrations if applied.get(m.version, {}).get("checksum") not in (None, m.checksum)]


def migrate(
    url: str,
    directory: Path,
    *,
    to: str | None = None,
    allow_out_of_order: bool = False,
    refuse_changed: bool = False,
    lock_timeout: float = LOCK_TIMEOUT,
    label_root: Path | None = None,
    on_applied: Callable[[Applied], None] | None = None,
) -> list[Applied]:
    """Apply the pending migrations in version order, each with its schema_migrations row in one
    transaction; what was applied (empty: nothing to do).

    One run at a time per database (a session advisory lock, held for the whole run); the applied
    versions are read after it is taken, so two runs started together apply each migration once.
    A failure stops the run: that migration left no trace, the ones before it stay applied."""
    migrations = load(directory, label_root)
    done: list[Applied] = []
    with connect(url, autocommit=True) as conn, _run_lock(conn, url, lock_timeout):
        applied = read_applied(conn)
        if refuse_changed:
            changed = changed_files(migrations, applied)
            if changed:
                raise MigrationError(f"{changed[0].label} changed after it was applied; refusing to migrate (restore the file as it was)")
        pending = plan(migrations, applied, to, allow_out_of_order)
        if not pending:
            return done
        conn.execute(TABLE)
        for migration in pending:
            seconds = _run_section(conn, url, migration, migration.up, done, lock_timeout, record=True)
            step = Applied(migration.version, migration.name, seconds)
            done.append(step)
            if on_applied:
                on_applied(step)
    return done


def rollback(
    url: str,
    directory: Path,
    *,
    steps: int | None = None,
    to: str | None = None,
    lock_timeout: float = LOCK_TIMEOUT,
    label_root: Path | None = None,
    on_rolled_back: Callable[[Applied], None] | None = None,
) -> list[Applied]:
    """Undo the newest applied migrations, newest first: `steps` of them (default 1), or every
    one newer than version `to`. Each must have a file with a down section, checked before
    anything changes; each down section commits with the removal of its row."""
    migrations = load(directory, label_root)
    done: list[Applied] = []
    with connect(url, autocommit=True) as conn, _run_lock(conn, url, lock_timeout):
        chosen = rollback_plan(migrations, read_applied(conn), steps, to)
        for migration in chosen:
            seconds = _run_section(conn, url, migration, migration.down, done, lock_timeout, record=False)
            step = Applied(migration.version, migration.name, seconds)
            done.append(step)
            if on_rolled_back:
                on_rolled_back(step)
    return done


def rollback_plan(migrations: list[Migration], applied: dict[str, dict], steps: int | None = None, to: str | None = None) -> list[Migration]:
    """The migrations a rollback undoes, newest first; MigrationError if any cannot be undone."""
    newest_first = sorted(applied, key=_order, reverse=True)
    if to is not None:
        if to not in applied:
            raise MigrationError(f"--to {to}: that version is not applied")
        chosen = [v for v in newest_first if _order(v) > _order(to)]
    else:
        chosen = newest_first[: 1 if steps is None else steps]
    files = {m.version: m for m in migrations}
    for version in chosen:
        if version not in files:
            raise MigrationError(f"cannot roll back {version}: its file is missing; nothing was rolled back")
        if files[version].down.empty:
            raise MigrationError(f"cannot roll back {files[version].label}: its down section is empty; nothing was rolled back")
    return [files[version] for version in chosen]


def build(url: str, schema: tuple[Path, str], directory: Path, seed: tuple[Path, str], label_root: Path | None = None) -> None:
    """Fill a fresh, empty database: the schema file, every migration, then the seed file."""
    run_sql_files(url, [schema])
    migrate(url, directory, label_root=label_root)
    run_sql_files(url, [seed])


_INSERT = "INSERT INTO public.schema_migrations (version, checksum, duration_ms) VALUES (%s, %s, %s)"
_DELETE = "DELETE FROM public.schema_migrations WHERE version = %s"


def _run_section(conn, url, migration: Migration, section: Section, done: list[Applied], lock_timeout: float, record: bool) -> float:
    started = time.perf_counter()
    with _BlockerWatch(url, conn.info.backend_pid, lock_timeout) as watch:
        try:
            if section.transaction:
                with conn.transaction():
                    _execute(conn, section.sql)
                    _bookkeep(conn, migration, started, record)
            else:
                _execute(conn, section.sql)
                _bookkeep(conn, migration, started, record)
        except psycopg.Error as e:
            raise SqlFileError(_failure(migration, section, e, watch.blockers, done, "applied" if record else "rolled back")) from None
    return time.perf_counter() - started


def _execute(conn: psycopg.Connection, text: str) -> None:
    if text.strip():
        conn.execute(text.encode())


def _bookkeep(conn, migration: Migration, started: float, record: bool) -> None:
    if record:
        conn.execute(_INSERT, (migration.version, migration.checksum, (time.perf_counter() - started) * 1000))
    else:
        conn.execute(_DELETE, (migration.version,))


def _failure(migration: Migration, section: Section, error: psycopg.Error, blockers: list[tuple], done: list[Applied], verb: str) -> str:
    message = describe_sql_error(migration.label, section.sql, error, section.first_line)
    if isinstance(error, errors.LockNotAvailable):
        message += "; " + (describe_blockers(blockers) if blockers else "the blocking session had ended")
    message += f"; nothing of it was {verb}" if section.transaction else "; it ran outside a transaction (transaction:false): check what it left"
    if done:
        message += f"; {', '.join(step.version for step in done)} of this run stay{'s' if len(done) == 1 else ''} {verb}"
    else:
        message += f"; nothing else was {verb}"
    return message


def describe_blockers(rows: list[tuple]) -> str:
    """'blocked by pid 123 (application 'psql', idle in transaction, for 12.3s)' for rows of
    (pid, application, state, seconds)."""
    parts = [
        f"pid {pid} (application {one_line(application or '')!r}, {state or 'state unknown'}, for {seconds or 0:.1f}s)"
        for pid, application, state, seconds in rows
    ]
    return "blocked by " + ", ".join(parts)


BLOCKERS = """
SELECT pid, application_name, state,
       extract(epoch FROM clock_timestamp() - coalesce(xact_start, query_start, backend_start))::float8
FROM pg_stat_activity WHERE pid = ANY(pg_blocking_pids(%s)) ORDER BY pid
"""


class _BlockerWatch:
    """Who blocks a session's statement, seen from a second connection while it waits: when
    lock_timeout cancels the wait, pg_blocking_pids can no longer tell. The second connection is
    opened only for a statement still running after a fraction of the timeout."""

    def __init__(self, url: str, pid: int, lock_timeout: float):
        self.url, self.pid = url, pid
        self.delay = min(0.5, lock_timeout / 4)
        self.blockers: list[tuple] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        if self._stop.wait(self.delay):
            return
        try:
            with connect(self.url, autocommit=True) as conn:
                while not self._stop.is_set():
                    rows = conn.execute(BLOCKERS, (self.pid,)).fetchall()
                    if rows:
                        self.blockers = rows
                    self._stop.wait(0.05)
        except Exception:
            pass  # a watcher that fails loses only a better message, never the run


class _run_lock:
    """The database's session advisory lock for a migration run, waited for at most RUN_LOCK_WAIT;
    then lock_timeout is the run's own."""

    def __init__(self, conn: psycopg.Connection, url: str, lock_timeout: float):
        self.conn, self.url, self.lock_timeout = conn, url, lock_timeout

    def __enter__(self):
        conn = self.conn
        conn.execute("SELECT set_config('lock_timeout', %s, false)", (_milliseconds(RUN_LOCK_WAIT),))
        with _BlockerWatch(self.url, conn.info.backend_pid, RUN_LOCK_WAIT) as watch:
            try:
                conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (_RUN_LOCK,))
            except errors.LockNotAvailable:
                holder = f" ({describe_blockers(watch.blockers)})" if watch.blockers else ""
                raise MigrationError(f"another migration run still holds the lock after {RUN_LOCK_WAIT:g}s{holder}; nothing was done") from None
        conn.execute("SELECT set_config('lock_timeout', %s, false)", (_milliseconds(self.lock_timeout),))
        return self

    def __exit__(self, *exc):
        if not self.conn.closed and not self.conn.broken:
            try:
                self.conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (_RUN_LOCK,))
            except psycopg.Error:
                pass  # the lock ends with the session anyway


def _milliseconds(seconds: float) -> str:
    return f"{max(1, round(seconds * 1000))}ms"
