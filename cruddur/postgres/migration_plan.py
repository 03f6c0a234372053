"""What pending migrations will do to the target, found before they run: per statement, the locks
it takes, the tables it rewrites, the size of each table it touches, and its hazards.

The target is only read: its schema (pg_dump --schema-only) is loaded into a scratch database on
the same server (same version, so the same behaviour), and the pending migrations run there as
the runner runs them: each statement on its own, as the runner splits the section
(Section.statements), a transactional section's statements in one transaction. After each statement
the transaction's own locks are read from pg_locks, the relfilenode of every relation compared
with the one before (a new one means a rewrite), and the statement's scans counted in
pg_stat_xact_user_tables. The scratch database is dropped at the end. Sizes come from the
target's catalog (reltuples, pg_total_relation_size). A transaction:false statement is traced in
its transactional form where PostgreSQL has one: CONCURRENTLY is blanked out of CREATE INDEX,
DROP INDEX and REINDEX (spaces in its place, so the server's error positions still fall on the
file's text), and what it was seen to take is reported as the ShareUpdateExclusiveLock the
concurrent form takes instead.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import psycopg
from psycopg import errors

from ..errors import MigrationError, StatementFailed, one_line
from ..timeouts import CATALOG_READ_LOCK_TIMEOUT, MIGRATION_LOCK_TIMEOUT, PLAN_STATEMENT_TIMEOUT
from . import dump, hazards
from .connect import connect, set_lock_timeout
from .migrations import Migration, Section
from .scratch import scratch_database
from .sql_text import Statement
from .statements import describe

_CONCURRENTLY = re.compile(
    r"^(\s*(?:CREATE\s+(?:UNIQUE\s+)?INDEX|DROP\s+INDEX|REINDEX\s*(?:\([^)]*\)\s*)?(?:INDEX|TABLE|SCHEMA|DATABASE|SYSTEM))\s+)CONCURRENTLY\b",
    re.IGNORECASE,
)
_CONCURRENT_MODE = "ShareUpdateExclusiveLock"
_TABLE_KINDS = ("r", "p", "m")


@dataclass(frozen=True)
class Lock:
    relation: str
    mode: str


@dataclass(frozen=True)
class TableSize:
    relation: str
    rows: int | None  # the planner's estimate (reltuples); None when the table was never analyzed
    bytes: int  # pg_total_relation_size: the table, its indexes and TOAST


@dataclass
class StatementPlan:
    line: int
    sql: str
    locks: list[Lock] = field(default_factory=list)
    rewrites: list[str] = field(default_factory=list)
    sizes: list[TableSize] = field(default_factory=list)
    hazards: list[hazards.Hazard] = field(default_factory=list)
    traced: str = "in the migration's transaction"  # how it ran on the copy


@dataclass
class MigrationPlan:
    version: str
    name: str
    label: str
    transaction: bool
    statements: list[StatementPlan]

    @property
    def refused(self) -> list[hazards.Hazard]:
        """The hazards no `-- cruddur:allow` line acknowledges."""
        return [h for s in self.statements for h in s.hazards if h.allowed is None]


@dataclass(frozen=True)
class _Relation:
    name: str
    kind: str
    table: int  # an index's table (its own oid for a table)


def plan(url: str, pending: list[Migration]) -> list[MigrationPlan]:
    """Trace the pending migrations on a scratch copy of the target's schema; their plans in order.
    MigrationError in one line when a statement fails on that copy (it would fail on the target)."""
    if not pending:
        return []
    # pg_dump reads the target while the server creates the scratch database.
    with ThreadPoolExecutor(max_workers=1) as pool:
        dumped = pool.submit(dump.schema_only, url)
        with scratch_database(url, "plan") as scratch_url, connect(scratch_url, autocommit=True) as conn:
            plans = _trace_all(conn, dumped.result(), pending)
    sizes = _sizes(url, {size for p in plans for s in p.statements for size in s.sizes})
    for migration_plan in plans:
        for statement in migration_plan.statements:
            statement.sizes = [sizes[name.relation] for name in statement.sizes if name.relation in sizes]
    return plans


def _trace_all(conn: psycopg.Connection, schema: str, pending: list[Migration]) -> list[MigrationPlan]:
    _load(conn, schema)
    conn.execute("RESET ALL")  # the script empties search_path; the migrations run with the default
    conn.execute("SELECT set_config('statement_timeout', %s, false)", (f"{round(PLAN_STATEMENT_TIMEOUT * 1000)}ms",))
    set_lock_timeout(conn, MIGRATION_LOCK_TIMEOUT)
    existing = _relations(conn)
    return [_trace(conn, migration, existing) for migration in pending]


def _load(conn: psycopg.Connection, schema: str) -> None:
    # pg_dump's script without psql's meta-commands (\restrict), and without the one setting a
    # server older than 17 rejects (pg_dump 18 writes it whatever the server).
    kept = [line for line in schema.splitlines() if not line.startswith(("\\", "SET transaction_timeout "))]
    try:
        with conn.transaction():
            conn.execute("\n".join(kept).encode())
    except psycopg.Error as e:
        raise MigrationError(f"cannot copy the schema of the target for the plan: {one_line(e)}; nothing was applied") from None


_RELATIONS = """
SELECT c.oid, n.nspname || '.' || c.relname, c.relkind, coalesce(i.indrelid, c.oid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_index i ON i.indexrelid = c.oid
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp)'
"""


def _relations(conn: psycopg.Connection) -> dict[int, _Relation]:
    return {oid: _Relation(name, kind, table) for oid, name, kind, table in conn.execute(_RELATIONS)}


def _trace(conn: psycopg.Connection, migration: Migration, existing: dict[int, _Relation]) -> MigrationPlan:
    section: Section = migration.up
    allowed = hazards.allowances(section.sql)
    statements = []
    held: dict[int, str] = {}  # locks this transaction holds on existing relations
    if section.transaction:
        conn.execute("BEGIN")
    for statement in section.statements:
        traced, concurrently = statement, 0
        if not section.transaction:
            held = {}
            text, concurrently = _CONCURRENTLY.subn(lambda m: m.group(1) + " " * len("CONCURRENTLY"), statement.text)
            traced = Statement(text, statement.line, statement.column)
            conn.execute("BEGIN")
        before = _snapshot(conn, existing)
        try:
            conn.execute(traced.text.encode(), prepare=False)
        except errors.ActiveSqlTransaction as e:
            conn.execute("ROLLBACK")
            if section.transaction:  # the runner's transaction fails the same way
                raise _failed(migration, statement, e) from None
            # VACUUM and the like: no transactional form; run as is so later statements see it.
            _run_outside(conn, migration, statement)
            statements.append(StatementPlan(statement.line, statement.text, traced="outside a transaction: locks not seen"))
            continue
        except psycopg.Error as e:
            conn.execute("ROLLBACK")
            raise _failed(migration, traced, e) from None
        after = _snapshot(conn, existing)
        if not section.transaction:
            conn.execute("COMMIT")
        statements.append(_judge(statement, existing, before, after, held, bool(concurrently), allowed))
        if concurrently:
            statements[-1].traced = "without CONCURRENTLY, in a transaction of its own"
        elif not section.transaction:
            statements[-1].traced = "in a transaction of its own (transaction:false)"
    if section.transaction:
        conn.execute("COMMIT")  # the scratch copy keeps it: the next migration builds on it
    return MigrationPlan(migration.version, migration.name, migration.label, section.transaction, statements)


def _run_outside(conn: psycopg.Connection, migration: Migration, statement: Statement) -> None:
    try:
        conn.execute(statement.text.encode(), prepare=False)
    except psycopg.Error as e:
        raise _failed(migration, statement, e) from None


def _failed(migration: Migration, statement: Statement, error: psycopg.Error) -> MigrationError:
    """The runner's own words for the failure (file, line, column, SQLSTATE), said of the copy."""
    message = describe(migration.label, StatementFailed(statement, error))
    return MigrationError(f"{message} (on a copy of the target's schema: it would fail there too); nothing was applied")


@dataclass(frozen=True)
class _Snapshot:
    locks: dict[int, str]  # relation -> strongest mode this transaction holds on it
    files: dict[int, int]  # relation -> relfilenode
    scans: dict[int, int]  # table -> scans counted in this transaction


_LOCKS = """
SELECT relation, mode FROM pg_locks
WHERE pid = pg_backend_pid() AND locktype = 'relation' AND granted
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""
_FILES = "SELECT oid, relfilenode FROM pg_class WHERE oid = ANY(%s)"
_SCANS = "SELECT relid, seq_scan + coalesce(idx_scan, 0) FROM pg_stat_xact_user_tables WHERE relid = ANY(%s)"


def _snapshot(conn: psycopg.Connection, existing: dict[int, _Relation]) -> _Snapshot:
    oids = list(existing)
    locks: dict[int, str] = {}
    for oid, mode in conn.execute(_LOCKS):
        if oid in existing and (oid not in locks or _strength(mode) > _strength(locks[oid])):
            locks[oid] = mode
    return _Snapshot(locks, dict(conn.execute(_FILES, (oids,)).fetchall()), dict(conn.execute(_SCANS, (oids,)).fetchall()))


def _strength(mode: str) -> int:
    return hazards.LOCK_MODES.index(mode) if mode in hazards.LOCK_MODES else len(hazards.LOCK_MODES)


def _judge(statement, existing, before: _Snapshot, after: _Snapshot, held: dict[int, str], concurrently: bool, allowed) -> StatementPlan:
    """The statement's plan from the snapshots around it; `held` (the transaction's locks so far)
    is brought up to date."""
    taken: dict[int, str] = {}
    for oid, mode in after.locks.items():
        if concurrently and _strength(mode) > _strength(_CONCURRENT_MODE):
            mode = _CONCURRENT_MODE
        if oid not in held or _strength(mode) > _strength(held[oid]):
            taken[oid] = mode
            held[oid] = mode
    rewritten = {oid for oid, node in before.files.items() if after.files.get(oid, node) != node}
    tables_rewritten = {oid for oid in rewritten if existing[oid].kind in _TABLE_KINDS}
    # An index rebuilt on its own (REINDEX) counts; one rebuilt with its table is part of that rewrite.
    rewrites = tables_rewritten | {oid for oid in rewritten if existing[oid].table not in tables_rewritten}
    scanned = {oid for oid, count in after.scans.items() if count > before.scans.get(oid, 0)}
    name = {oid: relation.name for oid, relation in existing.items()}
    table_modes = {oid: mode for oid, mode in held.items() if existing[oid].kind in _TABLE_KINDS}
    seen = hazards.Observed(
        held={name[oid]: mode for oid, mode in table_modes.items()},
        taken={name[oid]: mode for oid, mode in taken.items() if oid in table_modes},
        scanned={name[oid] for oid in scanned},
        rewritten={name[oid] for oid in tables_rewritten},
    )
    touched = {existing[oid].table for oid in (*taken, *rewrites, *scanned)}
    return StatementPlan(
        line=statement.line,
        sql=statement.text,
        # An index read by the planner (AccessShareLock) blocks nothing worth showing.
        locks=sorted(
            (Lock(name[oid], mode) for oid, mode in taken.items() if existing[oid].kind != "i" or mode != "AccessShareLock"),
            key=lambda lock: lock.relation,
        ),
        rewrites=sorted(name[oid] for oid in rewrites),
        # Named here, measured on the target once every plan is known.
        sizes=[TableSize(name[oid], None, 0) for oid in sorted(touched, key=name.get) if existing[oid].kind in _TABLE_KINDS],
        hazards=hazards.acknowledge(hazards.find(statement.text, seen), allowed),
    )


_SIZES = """
SELECT n.nspname || '.' || c.relname, c.reltuples, pg_total_relation_size(c.oid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname || '.' || c.relname = ANY(%s) AND c.relkind IN ('r', 'p', 'm')
"""


def _sizes(url: str, wanted: set[TableSize]) -> dict[str, TableSize]:
    """Each table's size on the target, read in a read-only transaction."""
    names = sorted({size.relation for size in wanted})
    if not names:
        return {}
    with connect(url) as conn:
        try:
            conn.execute("SET TRANSACTION READ ONLY")
            set_lock_timeout(conn, CATALOG_READ_LOCK_TIMEOUT, local=True)
            rows = conn.execute(_SIZES, (names,)).fetchall()
        except psycopg.Error as e:
            raise MigrationError(f"cannot read the sizes of {', '.join(names)} on the target: {one_line(e)}; nothing was applied") from None
    # reltuples is -1 (PostgreSQL 14+) or 0 with no pages until the table is first analyzed.
    return {name: TableSize(name, int(rows) if rows >= 0 else None, size) for name, rows, size in rows}
