"""Small helpers the test modules share (fixtures live in conftest.py)."""

from __future__ import annotations

import fcntl
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import termios
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
INV = Path(sys.executable).with_name("inv")


# Hypothesis's example count in the "full" profile (tests/conftest.py registers it and a quick one).
FULL_EXAMPLES = 100


def examples(full: int) -> int:
    """A test's example count: `full` in the full profile, in proportion in the quick default one."""
    from hypothesis import settings

    return max(1, full * settings.default.max_examples // FULL_EXAMPLES)


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (connections are refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def taken_port():
    """A port on 127.0.0.1 that a socket listens on (and never answers) while the block runs."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield s.getsockname()[1]


_initdb_once: list[Path] = []


def initialised_copy(pgdata: Path) -> None:
    """Make `pgdata` a copy of a data folder that initdb prepared once in this process (initdb
    takes seconds of CPU; the copy a fraction of one). A first start from an empty folder is what
    the embedded-default tests prove (their CRUDDUR_PGDATA starts empty)."""
    import atexit

    from cruddur.postgres import local_server

    if not _initdb_once:
        folder = Path(tempfile.mkdtemp(prefix="cruddur-initdb-"))
        atexit.register(shutil.rmtree, folder, True)
        local_server.initialise(folder / "pgdata")
        _initdb_once.append(folder / "pgdata")
    # As root the server runs as its own account: it must pass through the folder above (initdb's
    # preparation opens it so), and the copy keeps the files' owner (cp -a).
    pgdata.parent.chmod(0o711)
    subprocess.run(["cp", "-a", str(_initdb_once[0]), str(pgdata)], check=True)


@contextmanager
def temporary_pgdata(prefix: str = "cruddur-pg-"):
    """A data folder for an embedded PostgreSQL of the test's own, already through initdb (a copy,
    see initialised_copy); its server (if the test started one) stopped and the folder removed
    afterwards.

    Not under pytest's tmp_path: a concurrent pytest run prunes older runs' folders there (and, as
    root, resets their mode to 0700, locking out the server's account)."""
    from cruddur.postgres import local_server

    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        initialised_copy(folder / "pgdata")
        yield folder / "pgdata"
    finally:
        local_server.stop(folder / "pgdata")
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def counting_silent_port():
    """A port on 127.0.0.1 that takes connections and never answers, and a function that says how
    many connections clients have made to it so far (each is taken from the queue once counted)."""
    made = []
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        s.setblocking(False)

        def count() -> int:
            while True:
                try:
                    made.append(s.accept()[0])
                except BlockingIOError:
                    return len(made)

        try:
            yield s.getsockname()[1], count
        finally:
            for connection in made:
                connection.close()


def closed_port_url(password: str = "s3cr3t-pw") -> str:
    """A PostgreSQL URL, with a password, to a port where no server listens."""
    return f"postgresql://postgres:{password}@127.0.0.1:{free_port()}/cruddur"


def wait_for(probe, what: str, timeout: float = 30):
    """Poll `probe` until it returns something true, and return that; fail the test naming `what`
    when it never does (`timeout` only bounds a hang: nothing here depends on how long it takes)."""
    deadline = time.monotonic() + timeout
    while not (found := probe()):
        assert time.monotonic() < deadline, f"{what}: never happened within {timeout:g}s"
        time.sleep(0.02)
    return found


def silent_or_waited(outcomes_stderr: list[str], wait: float, what: str) -> bool:
    """Whether, of runs started at once, each said nothing on stderr or only the one notice of a
    run that waited more than WAIT_NOTICE_AFTER for another holding the lock of `what` (`wait`:
    how long a run waits in all), and at least one (the first to take the lock) waited for no one.
    Whether a run waits at all is up to the scheduler. The holder is named, or is "another
    session" when it let go between the try and the look."""
    from cruddur.timeouts import WAIT_NOTICE_AFTER

    waited = re.compile(
        rf"waiting up to {wait - WAIT_NOTICE_AFTER:g}s more for {re.escape(what)}"
        r" \(the lock is held by (session \d+ \('cruddur-ops', [a-z ]+, for \d+\.\ds\)|another session)\)\n"
    )
    notices = [stderr for stderr in outcomes_stderr if stderr]
    return len(notices) < len(outcomes_stderr) and all(waited.fullmatch(stderr) for stderr in notices)


def waiting_on_a_lock(url: str, query_start: str = "") -> int:
    """How many sessions of the URL's database wait on a lock (their query starting with `query_start`)."""
    with psycopg.connect(url, autocommit=True) as probe:
        return probe.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
            " AND starts_with(query, %s)",
            (query_start,),
        ).fetchone()[0]


def over_tcp(url: str, **params: str) -> str:
    """The same database as `url` over TCP with `params` (user, password) replaced: the embedded
    server trusts its unix socket, so a password is checked only on its 127.0.0.1 side (same port)."""
    from psycopg import conninfo

    host = conninfo.conninfo_to_dict(url).get("host") or "127.0.0.1"
    return conninfo.make_conninfo(url, host="127.0.0.1" if host.startswith("/") else host, **params)


def add_user(url: str, handle: str, display_name: str = "Someone") -> None:
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO users (display_name, handle, email, cognito_user_id) VALUES (%s, %s, %s, %s)",
            (display_name, handle, f"{handle}@example.com", f"MOCK-{handle}"),
        )


def table_count(url: str, table: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()[0]


def first_statement_line(path: Path) -> int:
    """The line where a .sql file's first statement starts (a lock wait names it)."""
    from cruddur.postgres.sql_text import split

    return split(path.read_text())[0].line


@contextmanager
def login_role(database_url: str, prefix: str):
    """A role of its own for this test's database (roles are server-wide), able to log in with a
    password and nothing more: yields the database's URL as that role; dropped afterwards."""
    from psycopg import conninfo

    from cruddur.postgres import urls

    role = prefix + urls.dbname(database_url)[-8:]
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'pw'").format(sql.Identifier(role)))
    try:
        yield conninfo.make_conninfo(database_url, user=role, password="pw")
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def assert_one_line_error(result, *fragments: str, prefix: str = "error: ") -> str:
    """`inv` failed the way a user should see it: exit code 1, one line on stderr starting with
    `prefix` (what the task decorator puts in front), no traceback. Returns that line."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(prefix), lines[0]
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


class Terminal:
    """`inv ARGS` with a pseudo-terminal as its controlling terminal, as in a person's shell: its
    stdin always; its stdout and stderr too, unless pipe_output (then finish() returns them apart)."""

    def __init__(self, args: list[str], env: dict[str, str], pipe_output: bool = False):
        self.controller, terminal = os.openpty()
        output = subprocess.PIPE if pipe_output else terminal
        self.process = subprocess.Popen(
            [str(INV), *args],
            cwd=ROOT,
            env=env,
            stdin=terminal,
            stdout=output,
            stderr=output,
            text=pipe_output,
            start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
        )
        os.close(terminal)
        self.shown = b""
        self._read_up_to = 0

    def read_until(self, marker: str, timeout: float = 30) -> None:
        """Read what the terminal shows until `marker` appears after the last marker found."""
        deadline = time.monotonic() + timeout
        while (found := self.shown.find(marker.encode(), self._read_up_to)) < 0:
            assert time.monotonic() < deadline and self._read(0.2), self.shown.decode(errors="replace")
        self._read_up_to = found + len(marker)

    def type(self, text: str) -> None:
        os.write(self.controller, text.encode())

    def finish(self, timeout: float = 60) -> tuple[int, str, str]:
        """Wait for the exit: (exit code, stdout, stderr), or (exit code, all the terminal showed, "")."""
        try:
            if self.process.stdout:
                out, err = self.process.communicate(timeout=timeout)
                return self.process.returncode, out, err
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and (self._read(0.1) or self.process.poll() is None):
                pass
            return self.process.wait(timeout=10), self.shown.decode(errors="replace"), ""
        finally:
            os.close(self.controller)

    def _read(self, wait: float) -> bool:
        """Whether the terminal is still open (False once the child closed it)."""
        if select.select([self.controller], [], [], wait)[0]:
            try:
                chunk = os.read(self.controller, 4096)
            except OSError:  # the child closed the terminal
                return False
            self.shown += chunk
            return bool(chunk)
        return True


class LocalHttpServer:
    """An HTTP server on 127.0.0.1, serving a handler class of the test's own from a daemon thread."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        host, port = self.server.server_address[:2]
        self.base_url = f"http://{host}:{port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that keeps the test output free of access logs."""

    def log_message(self, *args):
        pass
