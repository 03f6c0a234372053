"""`inv --list` and the db tasks must not pay for boto3 or requests: they load only on rds/sg paths."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("boto3", "botocore", "requests", "urllib3", "s3transfer")


def loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


def test_loading_the_namespace_imports_no_aws_or_http_library():
    modules = loaded_after(
        "from invoke import Collection\n"
        "import tasks\n"
        "ns = Collection.from_module(tasks)\n"
        "assert ns.collections['rds'].task_names and ns.collections['sg'].task_names"
    )
    assert {m.split(".")[0] for m in modules} & set(HEAVY) == set()


def test_the_aws_library_modules_load_nothing_heavy_until_used():
    modules = loaded_after("import cruddur.aws, cruddur.rds, cruddur.security_group, cruddur.public_ip")
    assert {m.split(".")[0] for m in modules} & {*HEAVY, "psycopg", "rich", "invoke"} == set()


def test_inv_list_imports_no_aws_or_http_library(base_env):
    inv = Path(sys.executable).with_name("inv")
    result = subprocess.run([sys.executable, "-X", "importtime", str(inv), "--list"], cwd=ROOT, env=base_env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "sg.update" in result.stdout and "rds.create" in result.stdout
    imported = {line.split("|")[-1].strip().split(".")[0] for line in result.stderr.splitlines() if "|" in line}
    assert "invoke" in imported  # the probe sees imports at all
    assert imported & set(HEAVY) == set()


def top_level_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("module", ["tasks/rds.py", "tasks/sg.py"])
def test_task_modules_import_no_heavy_module_at_the_top(module):
    assert top_level_imports(ROOT / module) <= {"sys"}  # plus relative imports of ._cli


@pytest.mark.parametrize("module", ["cruddur/aws.py", "cruddur/rds.py", "cruddur/security_group.py", "cruddur/public_ip.py"])
def test_library_modules_import_boto3_and_requests_only_where_used(module):
    assert top_level_imports(ROOT / module) & {*HEAVY, "invoke", "rich"} == set()
