"""The function's zip: self-sufficient, lean, reproducible, within Lambda's limits."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from cruddur.errors import PackageError
from cruddur.lambda_build import package as lambda_package
from tests.helpers import ROOT, assert_one_line_error, free_port
from tests.lambda_support import LOCAL_ARCHITECTURE, LOCAL_RUNTIME, OTHER_RUNTIME, sample_event, users

# Run in a child that sees only the zip's contents and the standard library: -E ignores PYTHON*
# variables, -s the user's site, -S site-packages (the venv's psycopg). The script sits in the
# extracted folder, so that folder is the first entry of the child's path, as /var/task is on Lambda.
CHILD = """
import json, sys
import cruddur_post_confirmation, psycopg
event = json.loads(sys.stdin.read())
returned = cruddur_post_confirmation.lambda_handler(event, None)
print(json.dumps({"returned": returned, "psycopg": psycopg.__file__, "impl": psycopg.pq.__impl__,
                  "version": psycopg.__version__}))
"""


def test_the_zip_runs_on_its_own_against_the_database(lambda_zip, schema_url, tmp_path):
    with zipfile.ZipFile(lambda_zip.path) as archive:
        archive.extractall(tmp_path / "task")
    runner = tmp_path / "task" / "run_handler_check.py"
    runner.write_text(CHILD)
    event = sample_event()
    env = {"CONNECTION_URL": schema_url, "PATH": os.environ.get("PATH", "")}

    child = subprocess.run(
        [sys.executable, "-E", "-s", "-S", str(runner)],
        input=json.dumps(event),
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )

    assert child.returncode == 0, child.stderr
    result = json.loads(child.stdout)
    assert result["returned"] == event
    assert Path(result["psycopg"]).is_relative_to(tmp_path / "task")
    assert result["impl"] == "binary"  # psycopg[binary]'s libpq, from the zip
    assert result["version"] == "3.3.9"  # its METADATA is kept for importlib.metadata
    user = event["request"]["userAttributes"]
    assert users(schema_url) == [(user["name"], user["email"], user["preferred_username"], user["sub"])]


def test_the_zip_holds_the_handler_at_its_root_and_nothing_the_runtime_does_not_need(lambda_zip):
    with zipfile.ZipFile(lambda_zip.path) as archive:
        names = archive.namelist()
        infos = archive.infolist()

    assert "cruddur_post_confirmation.py" in names
    assert "psycopg/__init__.py" in names
    assert any(name.startswith("psycopg_binary/") and ".so" in name for name in names)
    assert not [n for n in names if n.endswith((".pyi", ".h", "py.typed"))]
    assert not [n for n in names if ("__pycache__" in n) != n.endswith(".pyc")]
    metadata = [n for n in names if ".dist-info/" in n]
    assert all(n.endswith("/METADATA") or "/licenses/" in n or "LICENSE" in n for n in metadata), metadata
    assert not [n for n in names if n.endswith("/")]  # no directory entries
    handler_files = [n for n in names if n.rpartition("/")[2].startswith("cruddur_post_confirmation.")]
    assert names == sorted(set(names) - set(handler_files)) + sorted(handler_files)  # the requirements', then the handler's
    assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {info.external_attr >> 16 for info in infos} <= {0o100644, 0o100755}
    assert lambda_zip.files == len(names)
    assert lambda_zip.unzipped_size == sum(info.file_size for info in infos)


def test_the_zip_carries_hash_based_byte_code_for_every_module(lambda_zip):
    import importlib.util

    with zipfile.ZipFile(lambda_zip.path) as archive:
        names = set(archive.namelist())
        sources = [n for n in names if n.endswith(".py")]
        for source in sources:
            cached = importlib.util.cache_from_source(source)  # __pycache__/NAME.cpython-3XY.pyc
            assert cached in names, source
            header = archive.read(cached)[:16]
            assert header[:4] == importlib.util.MAGIC_NUMBER
            assert int.from_bytes(header[4:8], "little") == 0b11  # hash-based, checked against the source
            assert header[8:16] == importlib.util.source_hash(archive.read(source))
    assert "cruddur_post_confirmation.py" in sources and lambda_zip.bytecode
    assert lambda_zip.bytecode_note is None


def test_the_byte_code_is_what_the_runtime_uses_from_a_read_only_folder(lambda_zip, tmp_path):
    with zipfile.ZipFile(lambda_zip.path) as archive:
        archive.extractall(tmp_path / "task")
    (tmp_path / "task" / "probe.py").write_text(
        "import importlib.util, sys, cruddur_post_confirmation, psycopg\n"
        "print(sorted({type(m.__spec__.loader).__name__ for m in (cruddur_post_confirmation, psycopg)}))\n"
        "print(psycopg.__cached__)\n"
    )
    before = sorted(p for p in (tmp_path / "task").rglob("*.pyc"))

    child = subprocess.run(
        [sys.executable, "-E", "-s", "-S", "-B", "-X", "importtime", str(tmp_path / "task" / "probe.py")],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert child.returncode == 0, child.stderr
    assert sorted(p for p in (tmp_path / "task").rglob("*.pyc")) == before  # nothing written, nothing needed
    assert child.stdout.splitlines()[0] == "['SourceFileLoader']"
    assert Path(child.stdout.splitlines()[1]).is_file()


def test_a_runtime_other_than_the_building_python_gets_no_byte_code_and_says_so(other_runtime_zip):
    other = OTHER_RUNTIME
    built = other_runtime_zip

    with zipfile.ZipFile(built.path) as archive:
        assert not [n for n in archive.namelist() if n.endswith(".pyc")]
    assert not built.bytecode
    assert built.bytecode_note == (
        f"no byte code in the zip: it is built by Python {LOCAL_RUNTIME[6:]}, and only Python {other[6:]} compiles"
        f" byte code for {other} (cold starts will be slower; build with Python {other[6:]} or pass --runtime {LOCAL_RUNTIME})"
    )


def test_the_default_runtime_follows_the_building_python():
    from cruddur.lambda_build import defaults

    assert defaults.DEFAULT_RUNTIME == LOCAL_RUNTIME


def test_the_package_reports_lambdas_code_sha256(lambda_zip):
    data = lambda_zip.path.read_bytes()

    assert lambda_zip.code_sha256 == base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert lambda_zip.size == len(data)
    assert (lambda_zip.runtime, lambda_zip.architecture) == (LOCAL_RUNTIME, LOCAL_ARCHITECTURE)
    assert lambda_zip.handler == "cruddur_post_confirmation.lambda_handler"


def test_two_builds_give_the_same_bytes_whatever_the_mtimes(lambda_wheel_cache, tmp_path):
    handler_file = tmp_path / "cruddur_post_confirmation.py"
    shutil.copy(lambda_package.HANDLER_FILE, handler_file)

    first = lambda_package.build(LOCAL_RUNTIME, LOCAL_ARCHITECTURE, tmp_path / "a.zip", lambda_wheel_cache, handler_file)
    os.utime(handler_file, (1_900_000_000, 1_900_000_000))
    handler_file.chmod(0o600)
    second = lambda_package.build(LOCAL_RUNTIME, LOCAL_ARCHITECTURE, tmp_path / "b.zip", lambda_wheel_cache, handler_file)

    assert first.path.read_bytes() == second.path.read_bytes()
    assert first.code_sha256 == second.code_sha256


def test_a_changed_handler_changes_the_sha(lambda_zip, lambda_wheel_cache, tmp_path):
    handler_file = tmp_path / "cruddur_post_confirmation.py"
    handler_file.write_bytes(lambda_package.HANDLER_FILE.read_bytes() + b"\n# changed\n")

    changed = lambda_package.build(LOCAL_RUNTIME, LOCAL_ARCHITECTURE, tmp_path / "c.zip", lambda_wheel_cache, handler_file)

    assert changed.code_sha256 != lambda_zip.code_sha256


@pytest.fixture
def no_network_for_pip(monkeypatch):
    """pip sees no configuration and an index that refuses connections: only the cache works."""
    for name in list(os.environ):
        if name.startswith("PIP_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{free_port()}/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")


def wheels_only(wheel_cache: Path, folder: Path) -> Path:
    """A wheel cache holding the run's downloaded wheels and no installed requirements: pip must run."""
    folder.mkdir()
    for wheel in wheel_cache.glob("*.whl"):
        shutil.copy(wheel, folder)
    return folder


def test_an_offline_rebuild_from_the_wheel_cache_leaves_other_builds_partial_files_alone(
    lambda_zip, lambda_wheel_cache, tmp_path, no_network_for_pip
):
    wheels = wheels_only(lambda_wheel_cache, tmp_path / "wheels")
    output = tmp_path / "out" / "fn.zip"
    output.parent.mkdir()
    # Half-written zips of builds running at the same time (the pid is one no process has).
    others = [output.with_name("fn.zip.partial"), output.with_name("fn.zip.4194305.partial")]
    for other in others:
        other.write_bytes(b"half a zip")
    steps = []

    built = lambda_package.build(LOCAL_RUNTIME, LOCAL_ARCHITECTURE, output, wheels, progress=lambda step, done=None: steps.append(step))

    assert "installing the requirements (pip)" in steps
    assert [other.read_bytes() for other in others] == [b"half a zip"] * 2
    assert built.code_sha256 == lambda_zip.code_sha256 == lambda_package.code_sha256(output.read_bytes())
    assert sorted(output.parent.iterdir()) == sorted([output, *others])


def test_a_rebuild_takes_the_installed_requirements_from_the_cache_and_gives_the_same_bytes(lambda_zip, lambda_wheel_cache, tmp_path):
    wheels = wheels_only(lambda_wheel_cache, tmp_path / "wheels")
    cold_steps, warm_steps = [], []
    cold = lambda_package.build(
        LOCAL_RUNTIME, LOCAL_ARCHITECTURE, tmp_path / "cold.zip", wheels, progress=lambda step, _=None: cold_steps.append(step)
    )
    warm = lambda_package.build(
        LOCAL_RUNTIME, LOCAL_ARCHITECTURE, tmp_path / "warm.zip", wheels, progress=lambda step, _=None: warm_steps.append(step)
    )

    cold_sha, warm_sha = cold.code_sha256, warm.code_sha256
    assert "installing the requirements (pip)" in cold_steps and "taking the installed requirements from the cache" not in cold_steps
    assert "taking the installed requirements from the cache" in warm_steps and "installing the requirements (pip)" not in warm_steps
    assert cold_sha == warm_sha == lambda_zip.code_sha256
    assert len(list((wheels / "installed").glob("*.zip"))) == 1


def test_a_new_wheel_or_a_broken_cache_entry_means_installing_again(lambda_wheel_cache, tmp_path):
    wheels = wheels_only(lambda_wheel_cache, tmp_path / "wheels")
    first = lambda_package.build(LOCAL_RUNTIME, LOCAL_ARCHITECTURE, tmp_path / "a.zip", wheels)
    (kept,) = (wheels / "installed").glob("*.zip")
    damaged = bytearray(kept.read_bytes())
    damaged[len(damaged) // 2] ^= 0x01  # one bit a disk lost, inside an entry that still unzips, say
    kept.write_bytes(damaged)
    steps = []

    again = lambda_package.build(
        LOCAL_RUNTIME, LOCAL_ARCHITECTURE, tmp_path / "b.zip", wheels, progress=lambda step, done=None: steps.append(step)
    )

    assert "installing the requirements (pip)" in steps
    assert again.code_sha256 == first.code_sha256
    (wheels / "unrelated-1.0-py3-none-any.whl").write_bytes(b"a wheel pip may now choose")
    steps.clear()
    lambda_package.build(LOCAL_RUNTIME, LOCAL_ARCHITECTURE, tmp_path / "c.zip", wheels, progress=lambda step, done=None: steps.append(step))
    assert "installing the requirements (pip)" in steps
    assert len(list((wheels / "installed").glob("*.zip"))) == 2


def test_a_handler_named_like_a_file_of_the_requirements_is_one_line_and_writes_nothing(lambda_zip, lambda_wheel_cache, tmp_path):
    with zipfile.ZipFile(lambda_zip.path) as archive:
        top_level = [name for name in archive.namelist() if "/" not in name and name != lambda_package.HANDLER_FILE.name]
    assert top_level, "the requirements install no top-level module to clash with"
    handler = tmp_path / top_level[0]
    handler.write_bytes(lambda_package.HANDLER_FILE.read_bytes())

    with pytest.raises(PackageError) as raised:
        lambda_package.build(LOCAL_RUNTIME, LOCAL_ARCHITECTURE, tmp_path / "fn.zip", lambda_wheel_cache, handler_file=handler)

    assert str(raised.value).startswith("the requirements install ") and f" {top_level[0]}," in str(raised.value)
    assert str(raised.value).endswith("which the handler's files would shadow: rename the handler")
    assert "\n" not in str(raised.value)
    assert not (tmp_path / "fn.zip").exists()


def test_pip_failing_is_one_clear_line(tmp_path, no_network_for_pip):
    with pytest.raises(PackageError) as raised:
        lambda_package.build(LOCAL_RUNTIME, LOCAL_ARCHITECTURE, tmp_path / "x.zip", tmp_path / "empty-cache")

    message = str(raised.value)
    assert message.startswith(f"pip could not download the wheels for Python {LOCAL_RUNTIME[6:]} on Linux")
    assert "\n" not in message
    assert not (tmp_path / "x.zip").exists()


def test_requirements_that_cannot_be_read_are_one_clear_line(lambda_wheel_cache, tmp_path):
    missing = tmp_path / "requirements.txt"
    with pytest.raises(PackageError) as raised:
        lambda_package.build(LOCAL_RUNTIME, LOCAL_ARCHITECTURE, tmp_path / "x.zip", lambda_wheel_cache, requirements=missing)

    assert str(raised.value) == f"cannot read the requirements {str(missing)!r}: No such file or directory"
    assert not (tmp_path / "x.zip").exists()


def test_over_lambdas_zipped_limit_is_refused(lambda_wheel_cache, tmp_path):
    with pytest.raises(PackageError, match=r"the zip would be 4\.\d MB, over Lambda's limit of 1\.0 MB"):
        lambda_package.build(LOCAL_RUNTIME, LOCAL_ARCHITECTURE, tmp_path / "big.zip", lambda_wheel_cache, max_zipped_bytes=1024 * 1024)
    assert not (tmp_path / "big.zip").exists()


def test_over_lambdas_unzipped_limit_is_refused(lambda_wheel_cache, tmp_path):
    with pytest.raises(PackageError, match=r"would unzip to \d+\.\d MB, over Lambda's limit of 2\.0 MB"):
        lambda_package.build(
            LOCAL_RUNTIME, LOCAL_ARCHITECTURE, tmp_path / "big.zip", lambda_wheel_cache, max_unzipped_bytes=2 * 1024 * 1024
        )
    assert not (tmp_path / "big.zip").exists()


def test_lambdas_default_limits_are_50_and_250_mb():
    assert lambda_package.MAX_ZIPPED_BYTES == 50 * 1024 * 1024
    assert lambda_package.MAX_UNZIPPED_BYTES == 250 * 1024 * 1024


@pytest.mark.parametrize(
    ("runtime", "architecture", "message"),
    [
        ("python3", "x86_64", "runtime 'python3' is not a Lambda Python runtime"),
        ("nodejs20.x", "x86_64", "runtime 'nodejs20.x' is not a Lambda Python runtime"),
        ("python3.12", "aarch64", "architecture 'aarch64' is not one of Lambda's: x86_64, arm64"),
    ],
)
def test_a_bad_runtime_or_architecture_is_refused(tmp_path, runtime, architecture, message):
    with pytest.raises(PackageError, match=message):
        lambda_package.build(runtime, architecture, tmp_path / "x.zip", tmp_path / "cache")


def test_platform_tags_follow_the_runtimes_os():
    # python3.12+ run on Amazon Linux 2023 (glibc 2.34); older ones on Amazon Linux 2 (glibc 2.26).
    new = lambda_package.platform_tags("python3.12", "arm64")
    old = lambda_package.platform_tags("python3.11", "x86_64")

    assert new[0] == "manylinux_2_34_aarch64" and "manylinux_2_28_aarch64" in new
    assert new[-1] == "manylinux2014_aarch64"
    assert old[0] == "manylinux_2_26_x86_64" and old[-1] == "manylinux2014_x86_64"
    assert "manylinux_2_28_x86_64" not in old


def test_the_default_output_is_dist_in_the_checkout():
    assert lambda_package.DEFAULT_OUTPUT == ROOT / "dist" / "cruddur-post-confirmation.zip"


def test_inv_lambda_package_prints_path_size_files_and_code_sha256(run_task, lambda_build_defaults):
    result = run_task("lambda.package", "--runtime", LOCAL_RUNTIME, "--arch", LOCAL_ARCHITECTURE)

    assert result.returncode == 0, result.stderr
    zip_path = lambda_build_defaults
    data = zip_path.read_bytes()
    with zipfile.ZipFile(zip_path) as archive:
        files = len(archive.namelist())
    assert result.stdout.splitlines()[0] == str(zip_path)
    assert f"{len(data):,} bytes" in result.stdout
    assert f"files       {files}" in result.stdout
    assert base64.b64encode(hashlib.sha256(data).digest()).decode() in result.stdout


def test_inv_lambda_package_with_a_bad_runtime_is_one_line(inv):
    result = inv("lambda.package", "--runtime", "python2.7")

    assert result.returncode == 1
    assert result.stderr.strip() == (f"error: runtime 'python2.7' is not a Lambda Python runtime (expected e.g. {LOCAL_RUNTIME})")


def test_inv_lambda_package_json_is_the_package(run_task, lambda_build_defaults):
    result = run_task("lambda.package", "--json")

    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    data = lambda_build_defaults.read_bytes()
    assert document["code_sha256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert (document["runtime"], document["architecture"], document["bytecode"]) == (LOCAL_RUNTIME, "x86_64", True)
    assert document["size"] == len(data) and document["path"] == str(lambda_build_defaults)


@pytest.mark.parametrize("dry", [("--dry", "lambda.package"), ("lambda.package", "--dry-run")], ids=["inv --dry", "--dry-run"])
def test_a_dry_package_json_is_what_would_be_built_and_writes_nothing(run_task, lambda_build_defaults, dry):
    result = run_task(*dry, "--json", "--runtime", OTHER_RUNTIME)

    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert (document["runtime"], document["bytecode"], document["replaces"]) == (OTHER_RUNTIME, False, False)
    assert document["output"] == str(lambda_build_defaults)
    assert result.stderr.splitlines()[-1] == "dry run: nothing changed"
    assert not lambda_build_defaults.exists()


def test_inv_lambda_package_for_another_python_says_so_in_one_line(run_task, lambda_build_defaults):
    result = run_task("lambda.package", "--runtime", OTHER_RUNTIME)

    assert result.returncode == 0, result.stderr
    assert f"no byte code in the zip: it is built by Python {LOCAL_RUNTIME[6:]}" in result.stderr
    assert len([line for line in result.stderr.splitlines() if "byte code" in line]) == 1


@pytest.mark.parametrize(
    "where, reason", [("README.md/x.zip", "a part of it is a file, not a folder"), ("x" * 300 + ".zip", "File name too long")]
)
def test_a_zip_that_cannot_be_written_is_one_line(run_task, lambda_build_defaults, where, reason):
    result = run_task("lambda.package", "--output", where)

    assert_one_line_error(result, f"error: cannot write the zip to {where!r}: {reason}")
    assert not list(ROOT.glob("x*.zip*"))


def test_the_package_summary_prints_a_path_with_brackets_verbatim(tmp_path, run_task, lambda_build_defaults):
    odd = tmp_path / "out[" / "]odd [b]name.zip"  # the path reads "out[/]odd [b]name.zip"

    result = run_task("lambda.package", "--output", str(odd))

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == str(odd)
    assert odd.is_file()
