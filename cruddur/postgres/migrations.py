"""Schema migrations in dbmate's format: read the files, plan, apply, roll back, report status.

Files: sql/migrations/<version>_<name>.sql, version = UTC YYYYMMDDHHMMSS, with a `-- migrate:up`
and a `-- migrate:down` section (`transaction:false` after a marker runs that section outside a
transaction). Applied versions live in dbmate's public.schema_migrations(version), so dbmate and
this runner can take turns on one database; the extra columns have defaults for dbmate's inserts.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import errors, sql
from psycopg.rows import dict_row

from ..errors import MigrationError, SqlFileError, one_line
from ..polling import Deadline
from ..timeouts import MIGRATION_LOCK_TIMEOUT, RUN_LOCK_WAIT
from . import roles
from .admin import describe_sql_error, run_sql_files
from .connect import advisory_lock, connect, set_lock_timeout
from .sessions import Blocker, BlockerWatch, held_by

_FILE = re.compile(r"^(\d+)_(.*)\.sql$")  # dbmate's rule; other files in the folder are ignored
_MARKER = re.compile(r"^--[ \t]*migrate:(up|down)\b(.*?)\r?$", re.MULTILINE)
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
        sections[kind] = Section(text[body_start:end], transaction, line + 1)
    down = sections.get("down") or Section("", True, text.count("\n") + 2)
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
    prefix = directory.relative_to(label_root) if label_root and directory.is_relative_to(label_root) else directory
    for filename, path in files:
        version, name = _FILE.match(filename).groups()
        label = f"{prefix}/{filename}"
        if version in found:
            raise MigrationError(f"{label}: version {version} is also {found[version].label}; versions must be unique")
        try:
            with open(path, "rb") as file:
                text = file.read().decode("utf-8")
        except OSError as e:
            raise MigrationError(f"{label}: cannot read it: {e.strerror}") from None
        except UnicodeDecodeError as e:
            raise MigrationError(f"{label}: not UTF-8 text ({e.reason} at byte {e.start})") from None
        found[version] = parse(text, version, name, label)
    return [found[version] for version in sorted(found, key=_order)]


def _order(version: str) -> tuple[int, str]:
    # dbmate compares versions as numbers; the fixed width makes that the string order too.
    return (len(version.lstrip("0")), version.lstrip("0"))


def new_migration(directory: Path, name: str, now: datetime | None = None) -> Path:
    """Write an empty migration with both sections; its path."""
    if not _NAME.match(name):
        raise MigrationError(f"migration name {name!r}: use lowercase words joined by underscores, e.g. add_bio_to_users")
    version = (now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S")
    directory.mkdir(parents=True, exist_ok=True)
    for existing in directory.glob(f"{version}_*.sql"):
        raise MigrationError(f"{existing.name} already has version {version}; wait a second and try again")
    path = directory / f"{version}_{name}.sql"
    path.write_text("-- migrate:up\n\n\n-- migrate:down\n\n")
    return path


def read_applied(conn: psycopg.Connection) -> dict[str, dict]:
    """schema_migrations' rows by version; empty when there is no table (it is never created here).
    MigrationError in one line when it cannot be read (no permission, a lock timeout)."""
    try:
        if conn.execute("SELECT to_regclass('public.schema_migrations')").fetchone()[0] is None:
            return {}
        with conn.cursor(row_factory=dict_row) as cursor:
            return {row["version"]: row for row in cursor.execute("SELECT * FROM public.schema_migrations")}
    except psycopg.Error as e:
        raise MigrationError(f"cannot read public.schema_migrations: {one_line(e)}") from None


def _create_table(conn: psycopg.Connection, watch: BlockerWatch) -> None:
    """schema_migrations with this runner's columns; one line naming the blocker when another
    session holds a lock on it past the run's lock_timeout."""
    with watch.statement():
        try:
            conn.execute(TABLE)
        except psycopg.Error as e:
            blocked = f"; the lock was held by {held_by(watch.found)}" if isinstance(e, errors.LockNotAvailable) else ""
            raise MigrationError(f"cannot create or update public.schema_migrations: {one_line(e)}{blocked}; nothing was applied") from None


def inspect(url: str, directory: Path, label_root: Path | None = None) -> tuple[list[Migration], dict[str, dict]]:
    """The migration files and the applied rows, read without a lock and without creating anything."""
    migrations = load(directory, label_root)
    with connect(url, autocommit=True) as conn:
        set_lock_timeout(conn, MIGRATION_LOCK_TIMEOUT)  # a run's ALTER of the table must not hold this up for ever
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


def refuse_changed_files(migrations: list[Migration], applied: dict[str, dict]) -> None:
    """MigrationError naming the first applied file edited since it ran (production refuses those)."""
    changed = changed_files(migrations, applied)
    if changed:
        raise MigrationError(f"{changed[0].label} changed after it was applied; refusing to migrate (restore the file as it was)")


def migrate(
    url: str,
    directory: Path,
    *,
    to: str | None = None,
    allow_out_of_order: bool = False,
    refuse_changed: bool = False,
    lock_timeout: float = MIGRATION_LOCK_TIMEOUT,
    label_root: Path | None = None,
    on_applied: Callable[[Applied], None] | None = None,
    confirmed: list[Migration] | None = None,
) -> list[Applied]:
    """Apply the pending migrations in version order, each with its schema_migrations row in one
    transaction, then the table read again to prove it; what was applied (empty: nothing to do).

    One run at a time per database (a session advisory lock, held for the whole run); the applied
    versions are read after it is taken, so two runs started together apply each migration once.
    A failure stops the run: that migration left no trace, the ones before it stay applied.
    `confirmed`: the migrations a person agreed to apply; a different plan under the lock (another
    run, or a file edited while the question waited) is refused."""
    migrations = load(directory, label_root)
    done: list[Applied] = []
    with _run(url, lock_timeout) as (conn, watch):
        applied = read_applied(conn)
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
        try:
            for migration in pending:
                if migration is pending[-1]:
                    conn.execute("SET synchronous_commit = on")
                seconds = _run_section(conn, watch, migration, migration.up, done, record=True)
                step = Applied(migration.version, migration.name, seconds)
                done.append(step)
                if on_applied:
                    on_applied(step)
        except BaseException:
            if done:
                _wait_for_flush(conn)  # "stay applied" must hold through a crash too
            raise
        # Verify: the table, read again, holds every version this run applied.
        recorded = read_applied(conn)
        unrecorded = [step.version for step in done if step.version not in recorded]
        if unrecorded:
            raise MigrationError(f"applied but not recorded in schema_migrations: {', '.join(unrecorded)}")
        _regrant(conn)
    return done


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


def build(url: str, schema: tuple[Path, str], directory: Path, seed: tuple[Path, str], label_root: Path | None = None) -> None:
    """Fill a fresh, empty database: the schema file, every migration, then the seed file."""
    run_sql_files(url, [schema])
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


def _run_section(conn, watch: BlockerWatch, migration: Migration, section: Section, done: list[Applied], record: bool) -> float:
    started = time.perf_counter()
    bookkeeping = (_INSERT if record else _DELETE).format(version=sql.Literal(migration.version), checksum=sql.Literal(migration.checksum))
    with watch.statement():
        try:
            if section.transaction:
                # The section, its row and the commit in one round trip: a failure anywhere
                # aborts the whole transaction, so the row commits only with the section.
                text = _BEGIN + section.sql
                conn.execute(sql.SQL(";\n").join([sql.SQL(text), bookkeeping, sql.SQL("COMMIT")]).as_bytes(conn))
            else:
                text = section.sql
                if section.sql.strip():
                    conn.execute(section.sql.encode())
                conn.execute(bookkeeping)
        except psycopg.Error as e:
            if conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
                conn.execute("ROLLBACK")
            first_line = section.first_line - text.count("\n", 0, len(text) - len(section.sql))
            raise SqlFileError(
                _failure(migration, text, first_line, section, e, watch.found, done, "applied" if record else "rolled back")
            ) from None
    return time.perf_counter() - started


_BEGIN = "BEGIN;\n"
# now() is the transaction's start: the row records how long its migration took.
_INSERT = sql.SQL(
    "INSERT INTO public.schema_migrations (version, checksum, duration_ms)"
    " VALUES ({version}, {checksum}, extract(epoch FROM clock_timestamp() - now()) * 1000)"
)
_DELETE = sql.SQL("DELETE FROM public.schema_migrations WHERE version = {version}")


def _failure(
    migration: Migration,
    text: str,
    first_line: int,
    section: Section,
    error: psycopg.Error,
    blockers: list[Blocker],
    done: list[Applied],
    verb: str,
) -> str:
    message = describe_sql_error(migration.label, text, error, first_line)
    if isinstance(error, errors.LockNotAvailable):
        message += f"; the lock was held by {held_by(blockers)}"
    message += (
        f"; nothing of it was {verb}" if section.transaction else "; it ran outside a transaction (transaction:false): check what it left"
    )
    if done:
        message += f"; {', '.join(step.version for step in done)} of this run stay{'s' if len(done) == 1 else ''} {verb}"
    else:
        message += f"; nothing else was {verb}"
    return message


@contextmanager
def _run(url: str, lock_timeout: float):
    """A connection holding the database's advisory lock for a migration run (waited for at most
    RUN_LOCK_WAIT), with the run's lock_timeout, and the watcher that names blockers."""
    with connect(url, autocommit=True) as conn, BlockerWatch(url, conn.info.backend_pid, lock_timeout) as watch:
        with watch.statement():
            try:
                advisory_lock(conn, _RUN_LOCK, RUN_LOCK_WAIT)
            except errors.LockNotAvailable:
                raise MigrationError(
                    f"another migration run still holds the lock after {RUN_LOCK_WAIT:g}s ({held_by(watch.found)}); nothing was done"
                ) from None
        set_lock_timeout(conn, lock_timeout)
        yield conn, watch
        # Closing the connection releases the lock.
