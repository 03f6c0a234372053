"""`inv --list` for this project against a bare Invoke tasks.py with one task.

Run: python bench/bench_startup.py [rounds]
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from _timing import compare, time_command

ROOT = Path(__file__).resolve().parent.parent
BARE_TASKS = '''from invoke import task


@task
def hello(c):
    """Say hello."""
    print("hello")
'''


def main(rounds: int) -> None:
    inv = str(Path(sys.executable).with_name("inv"))
    bare = Path(tempfile.mkdtemp(prefix="cruddur-bench-bare-"))
    try:
        (bare / "tasks.py").write_text(BARE_TASKS)
        compare(
            "inv --list vs bare tasks.py",
            lambda: time_command([inv, "--list"], cwd=ROOT),
            lambda: time_command([inv, "--list"], cwd=bare),
            rounds,
            1.3,
        )
    finally:
        shutil.rmtree(bare, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 21)
