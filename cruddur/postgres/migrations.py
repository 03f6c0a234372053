"""Schema migrations in dbmate's format: read the files, plan, apply, roll back, report status.

Files: sql/migrations/<version>_<name>.sql, version = UTC YYYYMMDDHHMMSS, with a `-- migrate:up`
and a `-- migrate:down` section (`transaction:false` after a marker runs that section outside a
transaction). Applied versions live in dbmate's public.schema_migrations(version), so dbmate and
this runner can take turns on one database; the extra columns have defaults for dbmate's inserts.

Each statement of a section goes to the server on its own, as psql (and dbmate) run a file; the
bookkeeping goes through the driver with parameters, in the same transaction. A section outside a
transaction records that it started (and how far it got) in public.cruddur_migration_runs, a
table dbmate never reads: a run cut short there shows as `interrupted`, never as applied.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

import psycopg
from psycopg import errors
from psycopg.rows import dict_row

from ..errors import FileLockTimeout, MigrationError, SqlFileError, StatementFailed, one_line
from ..files import shown_path
from ..polling import Deadline
from ..timeouts import FILE_LOAD_LOCK_TIMEOUT, MIGRATION_LOCK_TIMEOUT, MIGRATION_RETRY_FIRST_PAUSE, MIGRATION_RETRY_MAX_PAUSE, RUN_LOCK_WAIT
from . import roles
from .admin import run_sql_files
from .connect import advisory_lock, connect, set_lock_timeout
from .sessions import Blocker, BlockerWatch, advisory_lock_holders, held_by
from .sql_text import Statement, read_sql, split
from .statements import Transaction, describe, run_atomically, run_each, run_transactions

_FILE = re.compile(r"^(\d+)_(.*)\.sql$")  # dbmate's rule; other files in the folder are ignored
_MARKER = re.compile(r"^--[ \t]*migrate:(up|down)\b(.*?)\r?$", re.MULTILINE)
_NAME = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
# A file name holds at most 255 bytes: <14-digit version>_<name>.sql.
MAX_NAME = 255 - len("YYYYMMDDHHMMSS_.sql")
_RUN_LOCK = "cruddur schema_migrations"

TABLE = """
CREATE TABLE IF NOT EXISTS public.schema_migrations (version varchar(128) PRIMARY KEY);
ALTER TABLE public.schema_migrations
  ADD COLUMN IF NOT EXISTS applied_at timestamptz DEFAULT now(),
  ADD COLUMN IF NOT EXISTS checksum text,
  ADD COLUMN IF NOT EXISTS duration_ms double precision;
"""
# One row per section running outside a transaction, from before its first statement until its
# version row commits: a row left behind is a run that was cut short.
RUNS_TABLE = """
CREATE TABLE IF NOT EXISTS public.cruddur_migration_runs (
  version varchar(128) PRIMARY KEY,
  direction text NOT NULL,
  checksum text NOT NULL,
  statements integer NOT NULL,
  statements_done integer NOT NULL DEFAULT 0,
  started_at timestamptz NOT NULL DEFAULT clock_timestamp()
)
"""
# What db.schema-load runs after the schema file, in its transaction: a fresh schema has no
# migration applied, whatever the file itself did to these tables.
RESET_QUERIES = [("DROP TABLE IF EXISTS public.schema_migrations, public.cruddur_migration_runs", None)]

APPLIED = "applied"
PENDING = "pending"
CHANGED = "applied-but-file-changed"
MISSING = "applied-but-file-missing"
INTERRUPTED = "interrupted"
RUNNING = "running"


@dataclass(frozen=True)
class Section:
    sql: str
    transaction: bool
    first_line: int  # the file's line where sql starts
    label: str = ""  # the file, for messages

    @cached_property
    def statements(self) -> list[Statement]:
        """The section's statements as psql would send them (UnterminatedSql names its line)."""
        return split(self.sql, self.label, self.first_line)

    @property
    def empty(self) -> bool:
        return not self.statements


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
    detail: str = ""  # for an interrupted run: where it stopped and what it left
    direction: str = ""  # ... and which section it ran: up or down
    invalid_indexes: list[str] = field(default_factory=list)  # ... INVALID indexes on the database


@dataclass(frozen=True)
class Applied:
    version: str
    name: str
    seconds: float


@dataclass(frozen=True)
class Retry:
    """A migration that hit its lock timeout and is tried again after `pause` seconds."""

    version: str
    name: str
    attempt: int  # the try about to start (2 is the first retry)
    attempts: int  # how many tries in all
    pause: float
    blockers: list[Blocker]


@dataclass(frozen=True)
class Overview:
    rows: list[Status]
    # public.schema_information.last_successful_run, the bootcamp's own migration scripts' record
    # (None: no such table)
    legacy_last_run: str | None = None


def parse(text: str, version: str, name: str, label: str) -> Migration:
    """One migration file's text, split into its up and down sections as dbmate does."""
    markers = list(_MARKER.finditer(text))
    preamble = text[: markers[0].start() if markers else len(text)]
    for number, line in enumerate(preamble.split("\n")):
        if line.strip() and not line.lstrip().startswith("--"):
            raise MigrationError(f"{label}:{number + 1}: SQL before '-- migrate:up'; every statement belongs to a section")
    if not markers or markers[0].group(1) != "up":
        raise MigrationError(f"{label}: no '-- migrate:up' section first (dbmate's format: '-- migrate:up', then '-- migrate:down')")
    sections: dict[str, Section] = {}
    for index, marker in enumerate(markers):
        kind, line = marker.group(1), text.count("\n", 0, marker.start()) + 1
        if kind in sections:
            raise MigrationError(f"{label}:{line}: a second '-- migrate:{kind}' section")
        transaction = True
        for option in marker.group(2).split():
            key, _, value = option.partition(":")
            if key != "transaction" or value not in ("true", "false"):
                raise MigrationError(f"{label}:{line}: unknown option {option!r} (only transaction:false)")
            transaction = value == "true"
        body_start = marker.end() + 1
        end = markers[index + 1].start() if index + 1 < len(markers) else len(text)
        sections[kind] = Section(text[body_start:end], transaction, line + 1, label)
    down = sections.get("down") or Section("", True, text.count("\n") + 2, label)
    return Migration(version, name, label, hashlib.sha256(text.encode()).hexdigest(), sections["up"], down)


def load(directory: Path, label_root: Path | None = None) -> list[Migration]:
    """Every migration file in the folder, in version order (a missing folder has none)."""
    found = {}
    try:
        with os.scandir(directory) as entries:
            files = sorted((entry.name, entry.path) for entry in entries if entry.is_file() and _FILE.match(entry.name))
    except FileNotFoundError:
        return []
    except OSError as e:
        raise MigrationError(f"{directory}: cannot list it: {e.strerror}") from None
    prefix = shown_path(directory, label_root)
    for filename, path in files:
        version, name = _FILE.match(filename).groups()
        label = f"{prefix}/{filename}"
        if version in found:
            raise MigrationError(f"{label}: version {version} is also {found[version].label}; versions must be unique")
        found[version] = parse(read_sql(Path(path), label, MigrationError), version, name, label)
    return [found[version] for version in sorted(found, key=_order)]


def _order(version: str) -> tuple[int, str]:
    # dbmate compares versions as numbers; the fixed width makes that the string order too.
    return (len(version.lstrip("0")), version.lstrip("0"))


def new_migration(directory: Path, name: str, now: datetime | None = None, dry_run: bool = False) -> Path:
    """Write an empty migration with both sections; its path (dry_run: only the path it would have)."""
    if len(name) > MAX_NAME:
        raise MigrationError(f"migration name of {len(name)} characters: at most {MAX_NAME} fit in a file name; say it shorter")
    if not _NAME.match(name):
        raise MigrationError(f"migration name {name!r}: use lowercase words joined by underscores, e.g. add_bio_to_users")
    version = (now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S")
    if dry_run:
        return directory / f"{version}_{name}.sql"
    directory.mkdir(parents=True, exist_ok=True)
    for existing in directory.glob(f"{version}_*.sql"):
        raise MigrationError(f"{existing.name} already has version {version}; wait a second and try again")
    path = directory / f"{version}_{name}.sql"
    path.write_text("-- migrate:up\n\n\n-- migrate:down\n\n")
    return path


def read_applied(conn: psycopg.Connection) -> dict[str, dict]:
    """schema_migrations' rows by version; empty when there is no table (it is never created here).
    MigrationError in one line when it cannot be read (no permission, a lock timeout)."""
    return _read_table(conn, "public.schema_migrations")


def read_runs(conn: psycopg.Connection) -> dict[str, dict]:
    """cruddur_migration_runs' rows by version: sections outside a transaction that started and
    did not finish (or are running now); empty when there is no table."""
    return _read_table(conn, "public.cruddur_migration_runs")


_SELECT_ALL = {
    "public.schema_migrations": "SELECT * FROM public.schema_migrations",
    "public.cruddur_migration_runs": "SELECT * FROM public.cruddur_migration_runs",
}


def _read_table(conn: psycopg.Connection, table: str) -> dict[str, dict]:
    try:
        if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0] is None:
            return {}
        with conn.cursor(row_factory=dict_row) as cursor:
            return {row["version"]: row for row in cursor.execute(_SELECT_ALL[table])}
    except psycopg.Error as e:
        raise MigrationError(f"cannot read {table}: {one_line(e)}") from None


_INVALID_INDEXES = """
SELECT index.indexrelid::regclass::text
FROM pg_index AS index JOIN pg_class AS class ON class.oid = index.indexrelid
WHERE NOT index.indisvalid AND class.relnamespace::regnamespace::text NOT IN ('pg_catalog', 'information_schema')
ORDER BY 1
"""


def invalid_indexes(conn: psycopg.Connection) -> list[str]:
    """The INVALID indexes on the database (pg_index.indisvalid false): what a CREATE INDEX
    CONCURRENTLY cut short leaves behind."""
    return [name for (name,) in conn.execute(_INVALID_INDEXES)]


def _read_legacy(conn: psycopg.Connection) -> str | None:
    """The bootcamp's migration record: public.schema_information.last_successful_run."""
    try:
        if conn.execute("SELECT to_regclass('public.schema_information')").fetchone()[0] is None:
            return None
        row = conn.execute("SELECT max(last_successful_run::text) FROM public.schema_information").fetchone()
        return row[0] if row[0] is not None else ""
    except psycopg.Error:
        return None  # a table of that name in another shape: not the bootcamp's


def _create_table(conn: psycopg.Connection, watch: BlockerWatch) -> None:
    """schema_migrations with this runner's columns; one line naming the blocker when another
    session holds a lock on it past the run's lock_timeout."""
    with watch.statement():
        try:
            conn.execute(TABLE)
        except psycopg.Error as e:
            blocked = f"; the lock was held by {held_by(watch.found)}" if isinstance(e, errors.LockNotAvailable) else ""
            raise MigrationError(f"cannot create or update public.schema_migrations: {one_line(e)}{blocked}; nothing was applied") from None


@contextmanager
def _reading(url: str):
    """A connection for reads only (no run lock: nothing is written), with a lock timeout: a
    run's ALTER of the table must not hold it up for ever."""
    with connect(url, autocommit=True) as conn:
        set_lock_timeout(conn, MIGRATION_LOCK_TIMEOUT)
        yield conn


def inspect(url: str, directory: Path, label_root: Path | None = None) -> tuple[list[Migration], dict[str, dict]]:
    """The migration files and the applied rows, read without a lock and without creating anything."""
    migrations = load(directory, label_root)
    with _reading(url) as conn:
        return migrations, read_applied(conn)


def status(url: str, directory: Path, label_root: Path | None = None) -> list[Status]:
    """Every version, from the files and the table, in version order."""
    return overview(url, directory, label_root).rows


def overview(url: str, directory: Path, label_root: Path | None = None) -> Overview:
    """status(), plus what the bootcamp's own migration record says, read in one connection
    without a lock and without creating anything."""
    migrations = load(directory, label_root)
    with _reading(url) as conn:
        applied, runs = read_applied(conn), read_runs(conn)
        running = bool(runs) and bool(advisory_lock_holders(conn, _RUN_LOCK))
        invalid = invalid_indexes(conn) if runs else []
        return Overview(statuses(migrations, applied, runs, running, invalid), _read_legacy(conn))


def statuses(
    migrations: list[Migration],
    applied: dict[str, dict],
    runs: dict[str, dict] | None = None,
    running: bool = False,
    invalid: list[str] | None = None,
) -> list[Status]:
    rows = []
    files = {m.version: m for m in migrations}
    runs = runs or {}
    for migration in migrations:
        row = applied.get(migration.version)
        if migration.version in runs:
            rows.append(_run_status(migration.version, migration, runs[migration.version], row, running, invalid or []))
        elif row is None:
            rows.append(Status(migration.version, migration.name, PENDING, None))
        else:
            # A version dbmate applied has no checksum to compare.
            changed = row.get("checksum") not in (None, migration.checksum)
            rows.append(Status(migration.version, migration.name, CHANGED if changed else APPLIED, row.get("applied_at")))
    for version, row in applied.items():
        if version not in files:
            if version in runs:
                rows.append(_run_status(version, None, runs[version], row, running, invalid or []))
            else:
                rows.append(Status(version, "", MISSING, row.get("applied_at")))
    for version, run in runs.items():
        if version not in files and version not in applied:
            rows.append(_run_status(version, None, run, None, running, invalid or []))
    return sorted(rows, key=lambda row: _order(row.version))


def _run_status(version: str, migration: Migration | None, run: dict, row: dict | None, running: bool, invalid: list[str]) -> Status:
    """A section outside a transaction that started and has not recorded its end: running now
    (another run holds the lock), or interrupted, with where it stopped and what it left."""
    name = migration.name if migration else ""
    applied_at = row.get("applied_at") if row else None
    direction = run["direction"]
    if running:
        return Status(version, name, RUNNING, applied_at, f"{direction} section running now, outside a transaction", direction)
    return Status(version, name, INTERRUPTED, applied_at, interrupted_at(migration, run), direction, invalid)


def interrupted_at(migration: Migration | None, run: dict) -> str:
    """Where an interrupted section stopped: 'up section stopped in statement 2 of 3 (line 7)'."""
    direction, done, total = run["direction"], run["statements_done"], run["statements"]
    if done >= total:
        return f"{direction} section ran all {total} statement(s) but its version row was not written"
    where = ""
    if migration is not None and migration.checksum == run["checksum"]:
        section = migration.up if direction == "up" else migration.down
        where = f" (line {section.statements[done].line})"
    return f"{direction} section stopped in statement {done + 1} of {total}{where}"


def plan(migrations: list[Migration], applied: dict[str, dict], to: str | None = None, allow_out_of_order: bool = False) -> list[Migration]:
    """The pending migrations to apply, in order, up to and including version `to`.

    A pending version older than the newest applied one is refused unless allow_out_of_order;
    so is a pending migration whose up section holds no statement (a file never edited)."""
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
    for migration in pending:
        if migration.up.empty:  # splitting also finds an unterminated quote or comment, before anything runs
            raise MigrationError(
                f"{migration.label}: its up section holds no statement (write the change below '-- migrate:up'); nothing was applied"
            )
    return pending


def changed_files(migrations: list[Migration], applied: dict[str, dict]) -> list[Migration]:
    """Applied migrations whose file no longer matches the checksum recorded when it ran."""
    return [m for m in migrations if applied.get(m.version, {}).get("checksum") not in (None, m.checksum)]


def refuse_changed_files(migrations: list[Migration], applied: dict[str, dict]) -> None:
    """MigrationError naming the first applied file edited since it ran (production refuses those:
    the hint is for --prod)."""
    changed = changed_files(migrations, applied)
    if changed:
        raise MigrationError(
            f"{changed[0].label} changed after it was applied; refusing to migrate"
            f" (restore the file as it was, or record it: inv db.migrations --prod --accept {changed[0].version})"
        )


def _refuse_interrupted(migrations: list[Migration], runs: dict[str, dict]) -> None:
    """MigrationError when a section outside a transaction was cut short: it must be finished or
    undone (db.migrations says how) before anything else runs."""
    if not runs:
        return
    version = min(runs, key=_order)
    files = {m.version: m for m in migrations}
    what = files[version].label if version in files else f"migration {version}"
    raise MigrationError(
        f"{what} was interrupted ({interrupted_at(files.get(version), runs[version])}, outside a transaction);"
        " inv db.migrations shows what it left and how to finish or undo it; nothing was done"
    )


def migrate(
    url: str,
    directory: Path,
    *,
    to: str | None = None,
    allow_out_of_order: bool = False,
    refuse_changed: bool = False,
    lock_timeout: float = MIGRATION_LOCK_TIMEOUT,
    retries: int = 0,
    label_root: Path | None = None,
    on_applied: Callable[[Applied], None] | None = None,
    on_retry: Callable[[Retry], None] | None = None,
    confirmed: list[Migration] | None = None,
) -> list[Applied]:
    """Apply the pending migrations in version order, each with its schema_migrations row in one
    transaction, then the table read again to prove it; what was applied (empty: nothing to do).

    One run at a time per database (a session advisory lock, held for the whole run); the applied
    versions are read after it is taken, so two runs started together apply each migration once.
    A failure stops the run: that migration left no trace, the ones before it stay applied.
    A migration that hit its lock timeout is tried again up to `retries` times, after a pause
    that doubles each time (with jitter); on_retry hears of each.
    `confirmed`: the migrations a person agreed to apply; a different plan under the lock (another
    run, or a file edited while the question waited) is refused."""
    migrations = load(directory, label_root)
    done: list[Applied] = []
    with _run(url, lock_timeout) as (conn, watch):
        applied = read_applied(conn)
        _refuse_interrupted(migrations, read_runs(conn))
        if refuse_changed:
            refuse_changed_files(migrations, applied)
        pending = plan(migrations, applied, to, allow_out_of_order)
        _refuse_unconfirmed(pending, confirmed, "apply")
        if not pending:
            return done
        _create_table(conn, watch)
        # Each commit need not wait for its own flush to disk: the last one's waits for them all,
        # and a crash before it loses whole migrations with their rows, never half of one.
        conn.execute("SET synchronous_commit = off")

        def applied(migration: Migration, seconds: float) -> None:
            step = Applied(migration.version, migration.name, seconds)
            done.append(step)
            if on_applied:
                on_applied(step)

        try:
            attempt, size = 1, 1
            while len(done) < len(pending):  # done holds the first of pending, in order
                batch = _next_batch(pending, len(done), size)
                started = time.perf_counter()
                try:
                    _apply(conn, watch, batch, done, applied, last=pending[-1])
                    attempt = 1
                    # Quick ones go together (a round trip each adds up); a slow one is reported
                    # as soon as it is done.
                    quick = time.perf_counter() - started < QUICK_MIGRATION * len(batch)
                    size = min(BATCH, size * 2) if quick else 1
                except FileLockTimeout as e:
                    if attempt > retries or not e.left_nothing:
                        if attempt > 1:
                            e.args = (f"{e} (gave up after {attempt} tries)",)
                        raise
                    attempt += 1
                    pause = min(MIGRATION_RETRY_MAX_PAUSE, MIGRATION_RETRY_FIRST_PAUSE * 2 ** (attempt - 2)) * random.uniform(0.5, 1.0)
                    stuck = pending[len(done)]
                    if on_retry:
                        on_retry(Retry(stuck.version, stuck.name, attempt, retries + 1, pause, e.blockers))
                    time.sleep(pause)
        except BaseException:
            # "Stay applied" must hold through a crash too (some of an interrupted batch may have
            # committed before anything was said of them).
            _wait_for_flush(conn)
            raise
        # Verify: the table, read again, holds every version this run applied.
        recorded = read_applied(conn)
        unrecorded = [step.version for step in done if step.version not in recorded]
        if unrecorded:
            raise MigrationError(f"applied but not recorded in schema_migrations: {', '.join(unrecorded)}")
        _regrant(conn)
    return done


BATCH = 20  # at most this many migrations in one round trip (each still its own transaction)
QUICK_MIGRATION = 0.05  # seconds: migrations quicker than this go in growing batches


def _next_batch(pending: list[Migration], start: int, size: int) -> list[Migration]:
    """From pending[start]: a section outside a transaction alone, else up to `size`
    transactional ones in a row."""
    if not pending[start].up.transaction:
        return [pending[start]]
    batch = []
    for migration in pending[start : start + size]:
        if not migration.up.transaction:
            break
        batch.append(migration)
    return batch


def _apply(conn, watch: BlockerWatch, batch: list[Migration], done: list[Applied], applied, last: Migration) -> None:
    """Apply the batch, calling applied(migration, seconds) for each that committed, also when a
    later one fails (then its error is raised)."""
    if not batch[0].up.transaction:
        applied(batch[0], _run_section(conn, watch, batch[0], batch[0].up, done, record=True))
        return
    transactions = [
        Transaction(
            m.up.statements,
            before=[("SET LOCAL synchronous_commit = on", None)] if m is last else [],
            after=[(_INSERT, (m.version, m.checksum))],
        )
        for m in batch
    ]
    with watch.statement():
        try:
            results = run_transactions(conn, transactions)
        except StatementFailed as e:
            for migration, cursors in zip(batch, e.committed):
                applied(migration, _seconds(cursors))
            raise _failure(batch[e.transaction], batch[e.transaction].up, e, watch.found, done, "applied", True) from None
    for migration, cursors in zip(batch, results):
        applied(migration, _seconds(cursors))


def _seconds(cursors: list[psycopg.Cursor]) -> float:
    """How long a migration took, from its version row's duration_ms (the INSERT's RETURNING)."""
    return cursors[-1].fetchone()[0] / 1000


def rollback(
    url: str,
    directory: Path,
    *,
    steps: int | None = None,
    to: str | None = None,
    lock_timeout: float = MIGRATION_LOCK_TIMEOUT,
    label_root: Path | None = None,
    on_rolled_back: Callable[[Applied], None] | None = None,
    confirmed: list[Migration] | None = None,
) -> list[Applied]:
    """Undo the newest applied migrations, newest first: `steps` of them (default 1), or every
    one newer than version `to`. Each must have a file with a down section, checked before
    anything changes; each down section commits with the removal of its row.
    `confirmed`: the migrations a person agreed to undo; a different plan under the lock is refused."""
    migrations = load(directory, label_root)
    done: list[Applied] = []
    with _run(url, lock_timeout) as (conn, watch):
        _refuse_interrupted(migrations, read_runs(conn))
        chosen = rollback_plan(migrations, read_applied(conn), steps, to)
        _refuse_unconfirmed(chosen, confirmed, "roll back")
        for migration in chosen:
            seconds = _run_section(conn, watch, migration, migration.down, done, record=False)
            step = Applied(migration.version, migration.name, seconds)
            done.append(step)
            if on_rolled_back:
                on_rolled_back(step)
        if done:
            _regrant(conn)
    return done


def baseline(
    url: str, directory: Path, version: str, *, label_root: Path | None = None, confirmed: list[Migration] | None = None
) -> list[Migration]:
    """Record every migration up to and including `version` as applied without running it (a
    database whose schema already has them: adopted from another tool, or loaded from a dump);
    what was recorded. Refused when a later version is already recorded."""
    migrations = load(directory, label_root)
    with _run(url, MIGRATION_LOCK_TIMEOUT) as (conn, watch):
        chosen = baseline_plan(migrations, read_applied(conn), version)
        _refuse_unconfirmed(chosen, confirmed, "record")
        if chosen:
            _create_table(conn, watch)
            with conn.transaction():
                conn.cursor().executemany(_RECORD, [(m.version, m.checksum) for m in chosen])
    return chosen


def baseline_plan(migrations: list[Migration], applied: dict[str, dict], version: str) -> list[Migration]:
    """The migrations --baseline VERSION would record: those up to VERSION not recorded yet.
    Refused when VERSION has no file, or a later version is already recorded."""
    if version not in {m.version for m in migrations}:
        raise MigrationError(f"--baseline {version}: no migration file has that version")
    later = sorted((v for v in applied if _order(v) > _order(version)), key=_order)
    if later:
        raise MigrationError(f"--baseline {version}: {later[-1]}, a later version, is already recorded; nothing was recorded")
    return [m for m in migrations if m.version not in applied and _order(m.version) <= _order(version)]


def accept(url: str, directory: Path, version: str, label_root: Path | None = None, dry: bool = False) -> str:
    """Record the migration file of `version`, as it is now, as applied (its checksum replaces
    the one recorded; an interrupted run's record is cleared); what was done. `dry`: the same
    checks and reads, no write; what it would do ("record ..."), for a plan."""
    files = {m.version: m for m in load(directory, label_root)}
    if version not in files:
        raise MigrationError(f"--accept {version}: no migration file has that version (--forget drops a version whose file is gone)")
    migration = files[version]
    if dry:
        with _reading(url) as conn:
            was = read_applied(conn).get(version)
        return f"record {migration.label} as applied" + (" (its edited text becomes the one on record)" if was else ", without running it")
    with _run(url, MIGRATION_LOCK_TIMEOUT) as (conn, watch):
        was = read_applied(conn).get(version)
        _create_table(conn, watch)
        with conn.transaction():
            conn.execute(_ACCEPT, (version, migration.checksum))
            _clear_run(conn, version)
    return f"recorded {migration.label} as applied" + (" (its edited text is now the one on record)" if was else ", without running it")


def forget(url: str, directory: Path, version: str, label_root: Path | None = None, dry: bool = False) -> str:
    """Delete the record of `version` (its schema_migrations row and any interrupted run), so the
    next migrate runs it again; what was done. `dry`: the same check, no write; what it would do
    ("forget ..."), for a plan."""
    if dry:
        with _reading(url) as conn:
            _refuse_unrecorded(conn, version)
        return f"forget {version}, so that the next inv db.migrate runs it again"
    with _run(url, MIGRATION_LOCK_TIMEOUT) as (conn, _):
        _refuse_unrecorded(conn, version)
        with conn.transaction():
            conn.execute("DELETE FROM public.schema_migrations WHERE version = %s", (version,))
            _clear_run(conn, version)
    return f"forgot {version}: it is pending now, and the next inv db.migrate runs it"


def _refuse_unrecorded(conn: psycopg.Connection, version: str) -> None:
    if version not in read_applied(conn) and version not in read_runs(conn):
        raise MigrationError(f"--forget {version}: that version is not recorded on this database; nothing to forget")


def _clear_run(conn: psycopg.Connection, version: str) -> None:
    if conn.execute("SELECT to_regclass('public.cruddur_migration_runs')").fetchone()[0] is not None:
        conn.execute("DELETE FROM public.cruddur_migration_runs WHERE version = %s", (version,))


def _refuse_unconfirmed(chosen: list[Migration], confirmed: list[Migration] | None, verb: str) -> None:
    """MigrationError when the plan made under the run's lock is not the one a person confirmed:
    another run changed schema_migrations in between, or a file of the plan was edited."""
    if confirmed is None or chosen == list(confirmed):
        return
    shown, now = (", ".join(m.version for m in plan) or "nothing" for plan in (confirmed, chosen))
    edited = [m.label for m in chosen if m.version in {c.version for c in confirmed} and m not in confirmed]
    what = f"{', '.join(edited)} changed" if edited else "the database changed"
    raise MigrationError(
        f"{what} since you confirmed: you confirmed to {verb} {shown}, now it would be {now};"
        " nothing was done, run the task again to see the new plan"
    )


def _wait_for_flush(conn: psycopg.Connection, bound: float = 2.0) -> None:
    """Wait (at most `bound` seconds) until the WAL written so far is on disk."""
    try:
        if conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
            conn.execute("ROLLBACK")
        written = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()[0]
        deadline = Deadline(bound)
        while not conn.execute("SELECT pg_current_wal_flush_lsn() >= %s::pg_lsn", (written,)).fetchone()[0]:
            if not deadline.pause(0.02):
                return
    except psycopg.Error:
        pass  # the server flushes on its own within moments (wal_writer_delay)


def rollback_plan(
    migrations: list[Migration], applied: dict[str, dict], steps: int | None = None, to: str | None = None
) -> list[Migration]:
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


def load_schema(url: str, path: Path, label: str, lock_timeout: float = FILE_LOAD_LOCK_TIMEOUT) -> None:
    """Load a schema file in one transaction, which also drops the migrations' record (whatever
    the file does to it): every migration is pending on the schema it built."""
    run_sql_files(url, [(path, label)], lock_timeout, after=RESET_QUERIES)


def build(url: str, schema: tuple[Path, str], directory: Path, seed: tuple[Path, str], label_root: Path | None = None) -> None:
    """Fill a fresh, empty database: the schema file, every migration, then the seed file."""
    run_sql_files(url, [schema], after=RESET_QUERIES)
    migrate(url, directory, label_root=label_root)
    run_sql_files(url, [seed])
    roles.regrant_database(url)


def _regrant(conn) -> None:
    """The app roles' privileges granted again (when the roles exist): a table a migration
    (re)created has none of them."""

    try:
        with conn.transaction():
            roles.regrant(conn)
    except psycopg.Error as e:
        raise MigrationError(
            f"the schema changed, but the app roles' privileges could not be granted again: {one_line(e)}; run inv db.roles"
        ) from None


# now() is the transaction's start: the row records how long its migration took.
_INSERT = (
    "INSERT INTO public.schema_migrations (version, checksum, duration_ms)"
    " VALUES (%s, %s, extract(epoch FROM clock_timestamp() - now()) * 1000) RETURNING duration_ms"
)
# Outside a transaction the migration started when its run was recorded.
_INSERT_AFTER_RUN = (
    "INSERT INTO public.schema_migrations (version, checksum, duration_ms)"
    " SELECT %s, %s, extract(epoch FROM clock_timestamp() - started_at) * 1000"
    " FROM public.cruddur_migration_runs WHERE version = %s"
)
_DELETE = "DELETE FROM public.schema_migrations WHERE version = %s"
_RECORD = "INSERT INTO public.schema_migrations (version, checksum) VALUES (%s, %s)"
_ACCEPT = _RECORD + " ON CONFLICT (version) DO UPDATE SET checksum = excluded.checksum"
_START_RUN = "INSERT INTO public.cruddur_migration_runs (version, direction, checksum, statements) VALUES (%s, %s, %s, %s)"
_STEP_RUN = "UPDATE public.cruddur_migration_runs SET statements_done = %s WHERE version = %s"
_END_RUN = "DELETE FROM public.cruddur_migration_runs WHERE version = %s"


def _run_section(conn, watch: BlockerWatch, migration: Migration, section: Section, done: list[Applied], record: bool) -> float:
    started = time.perf_counter()
    statements = section.statements
    version, checksum = migration.version, migration.checksum
    with watch.statement():
        try:
            if section.transaction:
                # The statements, the row and the commit in one pipeline: a failure anywhere
                # aborts the whole transaction, so the row commits only with the section.
                run_atomically(conn, statements, after=[(_INSERT, (version, checksum)) if record else (_DELETE, (version,))])
            else:
                _run_outside_transaction(conn, migration, section, record)
        except StatementFailed as e:
            left_nothing = section.transaction or _forget_clean_start(conn, migration, statements, e)
            raise _failure(migration, section, e, watch.found, done, "applied" if record else "rolled back", left_nothing) from None
    return time.perf_counter() - started


def _run_outside_transaction(conn: psycopg.Connection, migration: Migration, section: Section, record: bool) -> None:
    """Each statement on its own, its progress recorded before and after, then the version row
    and the end of the run's record in one transaction."""
    version = migration.version
    try:
        conn.execute(RUNS_TABLE)
        conn.execute(_START_RUN, (version, "up" if record else "down", migration.checksum, len(section.statements)))
    except psycopg.Error as e:
        raise StatementFailed(None, e) from None
    run_each(conn, section.statements, after_each=lambda count: conn.execute(_STEP_RUN, (count, version)))
    finish = (_INSERT_AFTER_RUN, (version, migration.checksum, version)) if record else (_DELETE, (version,))
    run_atomically(conn, [], after=[finish, (_END_RUN, (version,))])


def _forget_clean_start(conn: psycopg.Connection, migration: Migration, statements: list[Statement], failed: StatementFailed) -> bool:
    """After a failure outside a transaction: when its first statement failed and left no INVALID
    index, nothing changed, and the run's record goes (the migration stays plainly pending);
    whether that was so."""
    if not statements or failed.statement is not statements[0]:
        return False
    try:
        if invalid_indexes(conn):
            return False
        conn.execute(_END_RUN, (migration.version,))
        return True
    except psycopg.Error:
        return False


def _failure(
    migration: Migration,
    section: Section,
    failed: StatementFailed,
    blockers: list[Blocker],
    done: list[Applied],
    verb: str,
    left_nothing: bool,
) -> SqlFileError:
    message = describe(migration.label, failed)
    lock_timeout = isinstance(failed.error, errors.LockNotAvailable)
    if lock_timeout:
        message += f"; the lock was held by {held_by(blockers)}"
    if left_nothing:
        message += f"; nothing of it was {verb}"
    else:
        message += (
            "; it ran outside a transaction (transaction:false) and stopped part way:"
            " inv db.migrations shows what it left and how to finish or undo it"
        )
    if done:
        message += f"; {', '.join(step.version for step in done)} of this run stay{'s' if len(done) == 1 else ''} {verb}"
    else:
        message += f"; nothing else was {verb}"
    if lock_timeout:
        return FileLockTimeout(message, blockers, left_nothing)
    return SqlFileError(message)


@contextmanager
def _run(url: str, lock_timeout: float):
    """A connection holding the database's advisory lock for a migration run (waited for at most
    RUN_LOCK_WAIT, outside any transaction), with the run's lock_timeout, and the watcher that
    names blockers."""
    with connect(url, autocommit=True) as conn, BlockerWatch(url, conn.info.backend_pid, lock_timeout) as watch:
        if not advisory_lock(conn, _RUN_LOCK, RUN_LOCK_WAIT, what=f"another migration run on {conn.info.dbname!r} to end"):
            who = held_by(advisory_lock_holders(conn, _RUN_LOCK))
            raise MigrationError(f"another migration run ({who}) still holds the lock after {RUN_LOCK_WAIT:g}s; nothing was done")
        set_lock_timeout(conn, lock_timeout)
        yield conn, watch
        # Closing the connection releases the lock.
