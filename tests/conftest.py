"""Shared fixtures: one real PostgreSQL per test session (per xdist worker), a throwaway database
per test, and a task run either as `inv` in a subprocess, the way a user types it, or in this
process through Invoke's own Program (milliseconds instead of ~0.3 s) where the process boundary
proves nothing."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import traceback
import uuid
import warnings
from pathlib import Path

import psycopg
import pytest
from hypothesis import settings as hypothesis_settings
from psycopg import sql

from cruddur.config import Settings
from cruddur.postgres import local_server, urls
from tests.helpers import FULL_EXAMPLES, INV, ROOT, free_port, initialised_copy, temporary_pgdata

# Fixtures for the AWS (moto, IP services) and Lambda tests, registered once for every module.
pytest_plugins = ["tests.aws_support", "tests.lambda_support"]

# Hypothesis: a fifth of the examples by default, every one with HYPOTHESIS_PROFILE=full (one of
# CI's two passes). Tests name their full count through tests.helpers.examples().
hypothesis_settings.register_profile("full", max_examples=FULL_EXAMPLES)
hypothesis_settings.register_profile("quick", max_examples=FULL_EXAMPLES // 5)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "quick"))

# A run started in the background by a non-interactive shell (`pytest &` in a script) begins with
# SIGINT ignored, and every child inherits that: the Ctrl-C tests' children would never see theirs.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# Variables the project reads; a developer's own values must not leak into the tests.
PROJECT_VARIABLES = Settings.variables()

# A terminal's size, which a developer's shell may export and pytest-xdist sets in its workers
# (80x24): output is piped here, and tests that want a width set COLUMNS themselves.
TERMINAL_SIZE = {"COLUMNS", "LINES"}


def pytest_xdist_auto_num_workers(config):
    """`-n auto` (pyproject's default): two workers per CPU. Much of a test's time is waiting (for
    PostgreSQL, a child process, a timeout that must pass), and a second worker per CPU fills it:
    on two cores, four workers took 71 s where two took 91 s."""
    return 2 * len(os.sched_getaffinity(0))


@pytest.fixture(scope="session", autouse=True)
def one_botocore_data_loader():
    """botocore parses its JSON models and endpoints (megabytes) afresh for each session, and the
    library makes a session per client, as a process of its own does once. This process runs
    hundreds of tasks and tests: its sessions share one loader (the files are read-only), unless
    AWS_DATA_PATH points a session at other files."""
    from botocore import loaders, session

    shared = loaders.create_loader()

    def register(self):
        def loader():
            data_path = self.get_config_variable("data_path")
            return loaders.create_loader(data_path) if data_path else shared

        self._components.lazy_register_component("data_loader", loader)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(session.Session, "_register_data_loader", register)
        yield


@pytest.fixture(scope="session")
def server_url():
    """A URL to the maintenance database of a real server: TEST_DATABASE_URL, or an embedded one."""
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield external
        return
    with temporary_pgdata() as pgdata:
        # A port of its own: parallel runs and a developer's server keep theirs.
        yield local_server.start(pgdata, free_port())


def _admin(server_url: str):
    return psycopg.connect(server_url, autocommit=True)


def _create_database(server_url: str, template: str | None = None) -> str:
    """A new database with a name of its own (a copy of `template`, or empty); its URL."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template:
        query += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    with _admin(server_url) as conn:
        conn.execute(query)
    return urls.with_dbname(server_url, name)


def _drop_database(server_url: str, url: str) -> None:
    name = urls.dbname(url)
    with _admin(server_url) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextlib.contextmanager
def _template(server_url: str, *sql_files: str):
    """A database with the project's `sql_files` loaded, for copies (CREATE DATABASE ... TEMPLATE
    copies its files: milliseconds, where loading the schema takes a fraction of a second); its name."""
    url = _create_database(server_url)
    try:
        with psycopg.connect(url) as conn:
            for name in sql_files:
                conn.execute((ROOT / "sql" / name).read_bytes())
        yield urls.dbname(url)
    finally:
        _drop_database(server_url, url)


@pytest.fixture(scope="session")
def schema_template(server_url):
    """The name of this worker's database with sql/schema.sql loaded (never connect to it: a
    template with a session on it cannot be copied)."""
    with _template(server_url, "schema.sql") as name:
        yield name


@pytest.fixture(scope="session")
def seeded_template(server_url):
    """The name of this worker's database with sql/schema.sql and sql/seed.sql loaded (as schema_template)."""
    with _template(server_url, "schema.sql", "seed.sql") as name:
        yield name


@pytest.fixture
def server_sessions_alone():
    """For a test that makes sessions wait on each other, or reads every session on the server
    (the tree, the sessions table): where the workers share one server (TEST_DATABASE_URL), one
    such test at a time, so their chains and tables do not mix. Other tests' sessions may still
    wait meanwhile (a lock-timeout test, say): such a test checks its own sessions by pid or
    database. Each embedded server is its worker's own."""
    shared = os.environ.get("TEST_DATABASE_URL")
    if not shared:
        yield
        return
    import hashlib

    from filelock import FileLock

    name = "cruddur-test-sessions-" + hashlib.sha256(shared.encode()).hexdigest()[:12] + ".lock"
    with FileLock(Path(tempfile.gettempdir()) / name, timeout=600):
        yield


@pytest.fixture
def database_url(server_url):
    """A fresh, empty database of its own for this test; dropped afterwards."""
    url = _create_database(server_url)
    yield url
    _drop_database(server_url, url)


@pytest.fixture
def schema_url(request, server_url, schema_template):
    """A throwaway database with sql/schema.sql loaded (no seed data): database_url's own database
    when the test uses that too (the schema loaded into it), else a copy of schema_template."""
    yield from _loaded_database(request, server_url, schema_template, {"database_url"}, "database_url", "schema.sql")


@pytest.fixture
def seeded_url(request, server_url, seeded_template):
    """A throwaway database with sql/schema.sql and sql/seed.sql loaded: schema_url's (and
    database_url's) own database when the test uses those too, else a copy of seeded_template."""
    yield from _loaded_database(request, server_url, seeded_template, {"database_url", "schema_url"}, "schema_url", "seed.sql")


def _loaded_database(request, server_url: str, template: str, others: set[str], base: str, last_file: str):
    """A copy of `template`; or, when the test also uses one of the `others` fixtures, the
    `base` fixture's own database with sql/`last_file` loaded into it (one database, as a
    test that asks for both expects)."""
    if others & set(request.fixturenames):
        url = request.getfixturevalue(base)
        with psycopg.connect(url) as conn:
            conn.execute((ROOT / "sql" / last_file).read_bytes())
        yield url
        return
    url = _create_database(server_url, template)
    yield url
    _drop_database(server_url, url)


@pytest.fixture
def dev_on_empty_db(database_url):
    """The environment of a developer whose CONNECTION_URL is an empty throwaway database."""
    return {"CONNECTION_URL": database_url}


@pytest.fixture
def dev_on_schema_db(schema_url):
    """The environment of a developer whose CONNECTION_URL is a database at the baseline
    (sql/schema.sql, no migration applied yet)."""
    return {"CONNECTION_URL": schema_url}


@pytest.fixture
def base_env():
    """The environment for a subprocess: the project's variables cleared, the embedded
    server's data in a temporary folder, AWS pointed nowhere real."""
    env = {k: v for k, v in os.environ.items() if k not in PROJECT_VARIABLES | TERMINAL_SIZE and not k.startswith("AWS_")}
    # Not under pytest's tmp_path either: another pytest run resets that tree to mode 0700,
    # locking out the server's own account when the tests run as root.
    folder = Path(tempfile.mkdtemp(prefix="cruddur-test-"))
    env["CRUDDUR_PGDATA"] = str(folder / "pgdata")
    env["CRUDDUR_PGPORT"] = str(free_port())  # never 5432: several servers run at once
    env["AWS_ACCESS_KEY_ID"] = "testing"
    env["AWS_SECRET_ACCESS_KEY"] = "testing"
    env["AWS_DEFAULT_REGION"] = "us-east-1"
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    yield env
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def initialised_base_env(base_env):
    """base_env with its CRUDDUR_PGDATA through initdb already (a copy: see initialised_copy), as
    after a developer's first `inv db.up`: for tests of the embedded default that do not prove the
    first start from an empty folder (the tests that do use base_env alone)."""
    initialised_copy(Path(base_env["CRUDDUR_PGDATA"]))
    return base_env


@pytest.fixture
def inv(base_env):
    """Run `inv ARGS...` from the repository root; returns the CompletedProcess (text).
    An embedded server the test started in its CRUDDUR_PGDATA is stopped afterwards."""

    def run(*args: str, env: dict[str, str] | None = None, input: str | None = None, timeout: float = 120):
        return subprocess.run(
            [str(INV), *args],
            cwd=ROOT,
            env={**base_env, **(env or {})},
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    yield run
    local_server.stop(Path(base_env["CRUDDUR_PGDATA"]))


@pytest.fixture
def run_task(base_env, monkeypatch):
    """Run a task in this process as `inv ARGS...` would from the repository root, with the same
    environment as the `inv` fixture; returns a CompletedProcess (returncode, stdout, stderr).

    For tests where the process boundary proves nothing. What a real `inv` run proves stays with
    the `inv` fixture: start-up imports, a sample of exit codes and stderr lines per collection,
    terminals, signals, runs at once, what a child process inherits (psql's output and
    environment), a help screen's own words (Invoke names itself `inv[oke]` only there), and a log
    record no handler takes (a process prints it on stderr; here pytest captures it)."""

    def run(*args: str, env: dict[str, str] | None = None, input: str | None = None):
        stdout = _Capture(errors="strict")  # as Python's stdout on a pipe
        stderr = _Capture(errors="backslashreplace")  # as Python's stderr always
        with monkeypatch.context() as patch, _process_state_restored():
            _replace_environment(patch, {**base_env, **(env or {})})
            patch.chdir(ROOT)
            patch.setattr(sys, "stdin", io.StringIO(input or ""))
            patch.setattr(sys, "stdout", stdout)
            patch.setattr(sys, "stderr", stderr)
            code = _run_program(args)
            sys.stdout.flush()
            sys.stderr.flush()
        return subprocess.CompletedProcess([str(INV), *args], code, stdout.text(), stderr.text())

    yield run
    local_server.stop(Path(base_env["CRUDDUR_PGDATA"]))


def _run_program(args) -> int:
    """Invoke's Program on the project's namespace, as `inv` runs it; the exit code it would give."""
    from invoke import Program

    import tasks

    # Parsing a task's flags consumes its help texts (a process runs once; this one runs many).
    every_task = [tasks.ns[name] for name in tasks.ns.task_names]
    help_texts = [dict(task.help) for task in every_task]
    try:
        Program(namespace=tasks.ns, binary="inv").run(["inv", *args])
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            return e.code or 0
        print(e.code, file=sys.stderr)
        return 1
    except Exception:
        traceback.print_exc()  # an unexpected bug: the traceback a user would see, exit code 1
        return 1
    finally:
        for task, texts in zip(every_task, help_texts):
            task.help = texts
    return 0


class _Capture(io.TextIOWrapper):
    """A text stream over bytes, encoding as a child's UTF-8 pipe does (it refuses a lone surrogate)."""

    def __init__(self, errors: str):
        super().__init__(io.BytesIO(), encoding="utf-8", errors=errors, write_through=True)

    def text(self) -> str:
        self.flush()
        return self.buffer.getvalue().decode("utf-8")


def _replace_environment(patch: pytest.MonkeyPatch, environ: dict[str, str]) -> None:
    for name in list(os.environ):
        if name not in environ:
            patch.delenv(name)
    for name, value in environ.items():
        patch.setenv(name, value)


@contextlib.contextmanager
def _process_state_restored():
    """What a task run could leave behind in this process, put back afterwards: warning filters
    (and warnings shown on stderr, as in a fresh interpreter), logging handlers, the SIGINT handler."""
    handlers = {logger: list(logger.handlers) for logger in _loggers()}
    sigint = signal.getsignal(signal.SIGINT)
    with warnings.catch_warnings():
        warnings.resetwarnings()
        # A fresh interpreter's default filters, in its order, and its way of showing a warning.
        warnings.filterwarnings("default", category=DeprecationWarning, module="__main__", append=True)
        for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
            warnings.filterwarnings("ignore", category=category, append=True)
        warnings.showwarning = _show_warning
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, sigint)
            for logger in _loggers():
                logger.handlers[:] = handlers.get(logger, [])


def _loggers() -> list[logging.Logger]:
    return [logging.root, *(item for item in logging.root.manager.loggerDict.values() if isinstance(item, logging.Logger))]


def _show_warning(message, category, filename, lineno, file=None, line=None):
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))
