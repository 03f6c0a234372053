"""What `inv` does when it is interrupted while it loads, and when its reader goes away
(`inv db.sessions | head -1`): one line or none, never a traceback."""

from __future__ import annotations

import signal
import subprocess

import pytest

from tests.helpers import INV, ROOT

# Put first on the child's path: pauses the import of one module until the test interrupts it.
PAUSE_AT_IMPORT = """
import os, sys

class PauseAtImport:
    def find_spec(self, name, path=None, target=None):
        if name == os.environ["PAUSE_AT_IMPORT"]:
            sys.meta_path.remove(self)
            print("paused", flush=True)
            sys.stdin.read(1)  # until the test's SIGINT arrives: never written to
        return None

sys.meta_path.insert(0, PauseAtImport())
"""


@pytest.mark.parametrize("module", ["tasks.db", "tasks.rds", "cruddur.config"])
def test_ctrl_c_while_the_tasks_load_is_one_line_and_exit_130(base_env, tmp_path, module):
    (tmp_path / "sitecustomize.py").write_text(PAUSE_AT_IMPORT)
    env = {**base_env, "PYTHONPATH": str(tmp_path), "PAUSE_AT_IMPORT": module}
    process = subprocess.Popen(
        [str(INV), "--list"], cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout.readline() == "paused\n"  # the event itself: the import has begun

    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)

    assert process.returncode == 130, err
    assert err == "interrupted\n"
    assert out == ""


def run_into_a_closed_pipe(base_env, *args: str, env: dict[str, str] | None = None, unbuffered: bool = False) -> tuple[int, str]:
    """`inv ARGS` whose stdout reader has gone before it writes (as `| head -1` once it has its
    line): its exit code and stderr. Its stdout is block-buffered, as Python's on a pipe is,
    unless `unbuffered` (PYTHONUNBUFFERED): then each print meets the closed pipe itself."""
    environment = {name: value for name, value in {**base_env, **(env or {})}.items() if name != "PYTHONUNBUFFERED"}
    if unbuffered:
        environment["PYTHONUNBUFFERED"] = "1"
    process = subprocess.Popen(
        [str(INV), *args],
        cwd=ROOT,
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    process.stdout.close()  # the reader is gone
    err = process.stderr.read()
    return process.wait(timeout=120), err


@pytest.mark.parametrize("unbuffered", [False, True], ids=["buffered", "unbuffered"])
@pytest.mark.parametrize("args", [("db.status",), ("db.status", "--json"), ("db.sessions",), ("db.sessions", "--json")], ids=" ".join)
def test_a_reader_that_goes_away_ends_the_task_quietly(base_env, database_url, args, unbuffered):
    code, err = run_into_a_closed_pipe(base_env, *args, env={"CONNECTION_URL": database_url}, unbuffered=unbuffered)

    assert err == ""
    assert code == 141  # as a shell reports a process that SIGPIPE ended


def test_a_closed_pipe_through_a_shell_pipeline_shows_nothing_but_the_first_line(base_env, database_url):
    # The user's own command: head takes one line and leaves; whatever inv writes after that
    # meets a closed pipe.
    result = subprocess.run(
        f"{INV} db.sessions --json | head -1",
        shell=True,
        cwd=ROOT,
        env={**base_env, "CONNECTION_URL": database_url},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.stdout == "[\n"
    assert result.stderr == ""


@pytest.mark.parametrize("unbuffered", [False, True], ids=["buffered", "unbuffered"])
def test_a_refusal_printed_into_a_closed_pipe_is_its_one_line_or_nothing(base_env, schema_url, unbuffered):
    # --json prints the refusal on stdout, then the task fails. Buffered, the print succeeds and
    # the error line is shown, with no complaint about the pipe when Python exits; unbuffered,
    # the print itself meets the closed pipe, which ends the task quietly there.
    code, err = run_into_a_closed_pipe(
        base_env,
        "db.create-activity",
        "--handle",
        "nobody",
        "--message",
        "hi",
        "--json",
        env={"CONNECTION_URL": schema_url},
        unbuffered=unbuffered,
    )

    if unbuffered:
        assert (code, err) == (141, "")
    else:
        assert (code, err) == (1, "error: activity not created: user_not_found (no user has the handle 'nobody')\n")


@pytest.mark.parametrize("args", [("--list",), ("--help", "db.sessions")], ids=" ".join)
def test_invokes_own_output_into_a_closed_pipe_ends_quietly(base_env, args):
    code, err = run_into_a_closed_pipe(base_env, *args, unbuffered=True)

    assert (code, err) == (141, "")
