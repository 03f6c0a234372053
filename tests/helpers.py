"""Small helpers the test modules share (fixtures live in conftest.py)."""

from __future__ import annotations

import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
INV = Path(sys.executable).with_name("inv")


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (connections are refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def closed_port_url(password: str = "s3cr3t-pw") -> str:
    """A PostgreSQL URL, with a password, to a port where no server listens."""
    return f"postgresql://postgres:{password}@127.0.0.1:{free_port()}/cruddur"


def add_user(url: str, handle: str, display_name: str = "Someone") -> None:
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO users (display_name, handle, email, cognito_user_id) VALUES (%s, %s, %s, %s)",
            (display_name, handle, f"{handle}@example.com", f"MOCK-{handle}"),
        )


def table_count(url: str, table: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()[0]


def assert_one_line_error(result, *fragments: str) -> str:
    """`inv` failed the way a user should see it: exit code 1, one line on stderr, no traceback.
    Returns that line."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


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
