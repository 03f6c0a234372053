"""Shared fixtures: one real PostgreSQL per test session, a throwaway database per test,
and `inv` run as a subprocess the way a user types it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from cruddur.postgres import local_server, urls

from tests.helpers import INV, ROOT, free_port

# Fixtures for the AWS (moto, IP services) and Lambda tests, registered once for every module.
pytest_plugins = ["tests.aws_support", "tests.lambda_support"]

# Variables the project reads; a developer's own values must not leak into the tests.
PROJECT_VARIABLES = {
    "CONNECTION_URL",
    "PROD_CONNECTION_URL",
    "DB_SG_ID",
    "DB_SG_RULE_ID",
    "GITPOD_IP",
    "IP_LOOKUP_URLS",
    "RDS_MASTER_PASSWORD",
    "CRUDDUR_PGDATA",
    "CRUDDUR_PGPORT",
    "AWS_COGNITO_USER_POOL_ID",
    "LAMBDA_ROLE_ARN",
}


@pytest.fixture(scope="session")
def server_url():
    """A URL to the maintenance database of a real server: TEST_DATABASE_URL, or an embedded one."""
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield external
        return
    # Not under pytest's tmp_path: a concurrent pytest run prunes older runs' folders there
    # (and, as root, resets their mode to 0700, locking out the server's account).
    folder = Path(tempfile.mkdtemp(prefix="cruddur-pg-"))
    pgdata = folder / "pgdata"
    try:
        # A port of its own: parallel runs and a developer's server keep theirs.
        yield local_server.start(pgdata, free_port())
    finally:
        local_server.stop(pgdata)
        shutil.rmtree(folder, ignore_errors=True)


def _admin(server_url: str):
    return psycopg.connect(server_url, autocommit=True)


@pytest.fixture
def database_url(server_url):
    """A fresh, empty database of its own for this test; dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    with _admin(server_url) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield urls.with_dbname(server_url, name)
    with _admin(server_url) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def schema_url(database_url):
    """A throwaway database with sql/schema.sql loaded (no seed data)."""
    with psycopg.connect(database_url) as conn:
        conn.execute((ROOT / "sql" / "schema.sql").read_bytes())
    return database_url


@pytest.fixture
def base_env():
    """The environment for a subprocess: the project's variables cleared, the embedded
    server's data in a temporary folder, AWS pointed nowhere real."""
    env = {k: v for k, v in os.environ.items() if k not in PROJECT_VARIABLES and not k.startswith("AWS_")}
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
