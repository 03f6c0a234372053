"""The Postgres client the Flask backend and the tasks share: a connection pool, SQL templates
(<group>/<name>.sql, shipped inside the package as cruddur/sql_templates/), and helpers that let
Postgres build the JSON.

    db = Database(settings.connection_url)
    db.open()                      # once, at start-up: bounded wait, connection checked
    rows = db.query_array_json(db.template("activities", "home"), {"limit": 20})
    db.close()                     # or: with Database(...) as db: ...

Every statement runs on an autocommit connection: one statement is one transaction, committed
when it returns, so a read or a commit-returning write costs a single round trip. Failures are
raised as DatabaseError subclasses. Nothing is printed: the `cruddur` and `psycopg.pool` loggers
carry a NullHandler, so their records (the pool's warnings about failed connection attempts
among them) reach only the handlers the application configures. SQL logging is opt-in: enable
DEBUG on the `cruddur.sql` logger.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from time import monotonic
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from ..config import Settings
from ..errors import ClientClosed, CruddurError, DatabaseUnavailable, LockTimeout, QueryError, StatementTimeout, TemplateNotFound, one_line
from ..timeouts import (
    CLIENT_LOCK_TIMEOUT,
    CLIENT_STATEMENT_TIMEOUT,
    CONNECT_TIMEOUT,
    POOL_CHECK_AFTER,
    POOL_CHECKOUT_TIMEOUT,
    POOL_CLOSE_TIMEOUT,
    POOL_OPEN_TIMEOUT,
)
from . import urls
from .connect import connect_timeout

sql_log = logging.getLogger("cruddur.sql")
# Without a handler anywhere, Python prints warnings to stderr itself (logging.lastResort): a
# library leaves that choice to the application (cruddur/__init__.py does the same for `cruddur`).
logging.getLogger("psycopg.pool").addHandler(logging.NullHandler())

# The templates ship inside the package, so any install (not only an editable one) serves them.
PACKAGED_TEMPLATES = "cruddur.sql_templates"
_TEMPLATE_PART = re.compile(r"[a-z0-9_]+")

# Postgres builds the JSON: one value per statement, already decoded by psycopg's json loader.
ARRAY_JSON = "SELECT COALESCE(array_to_json(array_agg(row_to_json(array_row))),'[]'::json) FROM (\n{}\n) array_row"
OBJECT_JSON = "SELECT COALESCE(row_to_json(object_row),'{{}}'::json) FROM (\n{}\n) object_row"


Params = Mapping[str, Any] | None


class Database:
    """A pool of connections to one database, with SQL templates and JSON query helpers.

    Thread-safe: create one at application start and share it.
    """

    def __init__(
        self,
        url: str,
        *,
        password: Callable[[], str] | None = None,
        sql_dir: Path | None = None,
        min_size: int = 1,
        max_size: int = 10,
        timeout: float = POOL_CHECKOUT_TIMEOUT,
        check_after: float | None = POOL_CHECK_AFTER,
        name: str = "cruddur",
        lock_timeout: float | None = CLIENT_LOCK_TIMEOUT,
        statement_timeout: float | None = CLIENT_STATEMENT_TIMEOUT,
    ):
        """`timeout`: the longest wait for a free connection. `check_after`: a connection idle
        for longer than this many seconds is tested before it is handed out (one round trip,
        ConnectionPool.check_connection) and replaced if the server dropped it; 0 tests every
        time, None never. `sql_dir`: a folder of <group>/<name>.sql templates to use instead of
        the ones shipped in the package. `password`: called for each new connection, for a password that
        changes (an IAM token: see Database.iam); else the URL's own is used. `lock_timeout`,
        `statement_timeout`: the longest a statement waits for a lock (LockTimeout), and runs in
        all (StatementTimeout), in seconds; None: no bound."""
        params = urls.parse(url)
        self.lock_timeout, self.statement_timeout = lock_timeout, statement_timeout
        self.where = urls.describe(url)
        self.sql_dir: Traversable = files(PACKAGED_TEMPLATES) if sql_dir is None else Path(sql_dir)
        self._templates: dict[tuple[str, str], str] = {}
        self._templates_lock = threading.Lock()
        self._url = url
        self.check_after = check_after
        self._last_used: weakref.WeakKeyDictionary[psycopg.Connection, float] = weakref.WeakKeyDictionary()
        kwargs = {
            "autocommit": True,
            # A server that accepts and never answers must not hold a pool worker forever.
            "connect_timeout": connect_timeout(CONNECT_TIMEOUT),
            "options": _with_time_bounds(params.get("options"), lock_timeout, statement_timeout),
        }
        self._password = password
        self._pool_options = dict(
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            # The pool calls a callable for each connection it opens: a fresh password each time.
            kwargs=kwargs if password is None else (lambda: {**kwargs, "password": password()}),
            check=None if check_after is None else self._check_if_idle,
            name=name,
        )
        self.pool = ConnectionPool(url, open=False, **self._pool_options)

    @classmethod
    def iam(cls, host: str, dbname: str, user: str, *, port: int = 5432, region: str | None = None, **options) -> Database:
        """A client that logs in as `user` (cruddur_app) with IAM database authentication: a
        token signed from this process's AWS credentials for each new connection (no network
        call), over TLS, which RDS requires for tokens. No password anywhere."""
        from psycopg.conninfo import make_conninfo

        from ..aws.iam_auth import token_signer

        url = make_conninfo(host=host, port=port, dbname=dbname, user=user, sslmode="require")
        return cls(url, password=token_signer(host, port, user, region), **options)

    @classmethod
    def from_settings(cls, settings: Settings, **options) -> Database:
        """A client for CONNECTION_URL (MissingSetting if unset), with the packaged templates."""
        return cls(settings.require("connection_url"), **options)

    def __repr__(self) -> str:
        return f"Database({self.where!r})"

    # -- lifecycle ---------------------------------------------------------------------------

    def open(self, wait: bool = True, timeout: float = POOL_OPEN_TIMEOUT) -> Database:
        """Start the pool; with wait, block until its first connections work, at most `timeout`
        seconds in all, else DatabaseUnavailable saying why. An error the server answers at once
        (no such database, wrong password) fails at once. A failed open() may be retried, as may
        an open() after close()."""
        if not self.pool.closed:
            return self
        # A psycopg pool opens once: a retry, or a reopen after close(), needs a new one.
        self.pool = ConnectionPool(self._url, open=False, **self._pool_options)
        if not wait:
            self.pool.open(wait=False)
            return self
        started = monotonic()
        self._probe(timeout)
        self.pool.open(wait=False)
        try:
            self.pool.wait(timeout=max(timeout - (monotonic() - started), 0.001))
        except PoolTimeout:
            self.pool.close(timeout=0)
            raise DatabaseUnavailable(
                f"could not connect to {self.where} within {timeout:g}s: the server accepted one connection, then no more"
            ) from None
        sql_log.debug("pool %s open on %s", self.pool.name, self.where)
        return self

    def _probe(self, timeout: float) -> None:
        """One direct connection, bounded by `timeout` seconds in all (libpq's own timeout is whole
        seconds, at least 2, and per address); DatabaseUnavailable saying why it failed."""
        outcome: dict[str, str] = {}

        def attempt() -> None:
            # Not connect.connect(): the pool's own settings (no application_name of the tasks),
            # and libpq's raw message, which open() words itself.
            try:
                secret = {} if self._password is None else {"password": self._password()}
                psycopg.connect(self._url, connect_timeout=connect_timeout(timeout), **secret).close()
                outcome["ok"] = ""
            except psycopg.Error as e:
                # libpq's messages name host, port, user and database, never the password.
                outcome["error"] = one_line(e)
            except CruddurError as e:  # no password to be had (an IAM token needs AWS credentials)
                outcome["error"] = str(e)

        # A daemon thread: when the wait ends first, the attempt ends by its own timeout.
        worker = threading.Thread(target=attempt, name=f"{self._pool_options['name']}-probe", daemon=True)
        worker.start()
        worker.join(timeout)
        if "ok" not in outcome:
            reason = outcome.get("error", "the server did not answer")
            raise DatabaseUnavailable(f"could not connect to {self.where} within {timeout:g}s: {reason}")

    def _check_if_idle(self, conn: psycopg.Connection) -> None:
        # A connection in use moments ago is alive: skipping its test keeps the busy path at one
        # round trip per query (the same bypass window idea as HikariCP's 500 ms).
        used = self._last_used.get(conn)
        if used is None or monotonic() - used >= self.check_after:
            ConnectionPool.check_connection(conn)

    def close(self, timeout: float = POOL_CLOSE_TIMEOUT) -> None:
        """Close every connection (waiting at most `timeout` seconds for those in use)."""
        self.pool.close(timeout=timeout)

    def __enter__(self) -> Database:
        return self.open()

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- templates ---------------------------------------------------------------------------

    def template(self, group: str, name: str) -> str:
        """The text of the template <group>/<name>.sql, read once and cached."""
        key = (group, name)
        cached = self._templates.get(key)
        if cached is not None:
            return cached
        if not (_TEMPLATE_PART.fullmatch(group) and _TEMPLATE_PART.fullmatch(name)):
            raise TemplateNotFound(f"bad template name {group!r}/{name!r}: use lowercase letters, digits, _")
        path = self.sql_dir / group / f"{name}.sql"
        try:
            text = path.read_text(encoding="utf-8").strip().rstrip(";")
        except FileNotFoundError:
            raise TemplateNotFound(f"no SQL template {group}/{name}.sql in {self.sql_dir}") from None
        with self._templates_lock:
            return self._templates.setdefault(key, text)

    # -- queries -----------------------------------------------------------------------------

    def _checkout(self, timeout: float | None = None) -> psycopg.Connection:
        try:
            return self.pool.getconn(timeout=timeout)
        except PoolTimeout:
            raise DatabaseUnavailable(
                f"no free connection to {self.where} within {timeout or self.pool.timeout:g}s (pool of {self.pool.max_size})"
            ) from None
        except PoolClosed:
            raise ClientClosed(f"the database client for {self.where} is not open") from None

    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[psycopg.Connection]:
        """A pooled autocommit connection, for work the helpers do not cover; returned on exit
        (a transaction opened on it is committed, or rolled back on an exception)."""
        conn = self._checkout(timeout)
        try:
            with conn:
                yield conn
            self._last_used[conn] = monotonic()
        finally:
            self.pool.putconn(conn)
            if conn.broken:
                self._check_the_others()

    def _fetchone(self, sql: str, params: Params) -> tuple | None:
        if params is not None and not isinstance(params, Mapping):
            raise TypeError("SQL parameters must be a mapping: use named placeholders, %(name)s")
        if sql_log.isEnabledFor(logging.DEBUG):
            sql_log.debug("%s\n-- params: %r", sql, dict(params or {}))
        # One autocommit statement needs no commit, so no `with conn:` around it: on this path
        # that block cost more than the checkout itself. putconn discards a broken connection.
        conn = self._checkout()
        try:
            row = conn.execute(sql, params).fetchone()
        except psycopg.Error as e:
            self.pool.putconn(conn)
            if conn.broken:
                # The pool replaces this connection with a fresh one.
                self._check_the_others()
                raise DatabaseUnavailable(f"lost the connection to {self.where}: {one_line(e)}") from e
            if e.sqlstate is None:
                raise  # a client-side mistake (bad placeholders, ...): a bug, keep the traceback
            raise _query_error(e, self.lock_timeout, self.statement_timeout) from e
        except BaseException:
            self.pool.putconn(conn)
            raise
        self._last_used[conn] = monotonic()
        self.pool.putconn(conn)
        return row

    def _check_the_others(self) -> None:
        # One broken connection means the server restarted or dropped us: the idle ones are
        # most likely broken too. Test them all now (the pool replaces the dead ones) so that
        # the next callers get working connections, not one failure each.
        try:
            self.pool.check()
        except PoolClosed:
            pass

    def query_value(self, sql: str, params: Params = None) -> Any:
        """The first column of the first row, or None when there is no row.

        Also the way to write: the statement is committed when this returns, and its value is
        the first column of the first RETURNING row (None when it returned none)."""
        row = self._fetchone(sql, params)
        return None if row is None else row[0]

    # Every statement commits on return, so a write is a read of its RETURNING value; the
    # second name says which one the caller means.
    query_commit = query_value

    def query_array_json(self, sql: str, params: Params = None) -> list[dict[str, Any]]:
        """The query's rows as a list of dicts (JSON built by Postgres; [] when none)."""
        return self._fetchone(ARRAY_JSON.format(sql), params)[0]

    def query_object_json(self, sql: str, params: Params = None) -> dict[str, Any]:
        """The query's first row as a dict (JSON built by Postgres; {} when none)."""
        row = self._fetchone(OBJECT_JSON.format(sql), params)
        # With no row under it the wrapper returns no row at all, so COALESCE never runs.
        return {} if row is None else row[0]


def _with_time_bounds(options: str | None, lock_timeout: float | None, statement_timeout: float | None) -> str:
    """libpq's `options` (the URL's own, if any, first) setting the session's time bounds at
    connection start-up: no round trip of their own."""
    settings = [options] if options else []
    for name, seconds in (("lock_timeout", lock_timeout), ("statement_timeout", statement_timeout)):
        if seconds is None:
            continue
        if not (isinstance(seconds, int | float) and math.isfinite(seconds) and seconds > 0):
            raise ValueError(f"{name} must be a number of seconds above 0, or None for no bound; not {seconds!r}")
        # Postgres reads 0 as "no bound": a bound is at least one millisecond.
        settings.append(f"-c {name}={max(1, round(seconds * 1000))}")
    return " ".join(settings)


def _query_error(error: psycopg.Error, lock_timeout: float | None, statement_timeout: float | None) -> QueryError:
    """What a statement's failure raises: LockTimeout, StatementTimeout, else QueryError."""
    said = f"{error.diag.message_primary or one_line(error)} (SQLSTATE {error.sqlstate})"
    if isinstance(error, psycopg.errors.LockNotAvailable) and lock_timeout is not None:
        return LockTimeout(f"query gave up after waiting {lock_timeout:g}s for a lock another session holds: {said}", error.sqlstate)
    if isinstance(error, psycopg.errors.QueryCanceled):
        bound = f" (statement_timeout is {statement_timeout:g}s)" if statement_timeout is not None else ""
        return StatementTimeout(f"query cancelled{bound}: {said}", error.sqlstate)
    return QueryError(f"query failed: {said}", error.sqlstate)
