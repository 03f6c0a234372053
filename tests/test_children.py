"""Child processes with time limits, their stderr read while they run (cruddur.children), with
real children: Python one-liners that sleep, chatter on stderr, or stop reading."""

from __future__ import annotations

import os
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cruddur import children
from cruddur.errors import ChildTimedOut, CruddurError

PYTHON = [sys.executable, "-S", "-E", "-c"]


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_child_past_its_limit_is_killed_and_reported_in_one_line(tmp_path):
    pid_file = tmp_path / "pid"
    sleeper = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(600)"

    with pytest.raises(ChildTimedOut) as stopped:
        children.run([*PYTHON, sleeper], name="the sleeper", limit=1)

    assert str(stopped.value) == "the sleeper was still running after 1s and was stopped"
    assert gone(int(pid_file.read_text()))


@settings(max_examples=8, deadline=None)
@given(stderr_bytes=st.integers(0, 400_000), stdout_bytes=st.integers(0, 400_000))
def test_a_chatty_child_runs_to_its_end_with_both_outputs_whole(stderr_bytes, stdout_bytes):
    chatty = f"import sys; sys.stderr.write('e' * {stderr_bytes}); sys.stdout.write('o' * {stdout_bytes})"

    ended = children.run([*PYTHON, chatty], name="chatty", limit=60)

    assert (ended.returncode, len(ended.stderr), len(ended.stdout)) == (0, stderr_bytes, stdout_bytes)


def test_a_program_that_cannot_start_is_one_line(tmp_path):
    with pytest.raises(CruddurError) as failed:
        children.run([str(tmp_path / "no-such-program")], name="nothing", limit=5)
    assert str(failed.value) == f"cannot run {tmp_path / 'no-such-program'}: No such file or directory"


# pg_restore | psql, played by two Python children: each writes more to stderr than a pipe holds
# (64 kB) before it gets to the data, as a verbose pg_restore or a psql full of notices does.
PRODUCER = "import sys; sys.stderr.write('p' * {noise}); sys.stderr.flush(); sys.stdout.write('keep 1\\nSKIP me\\nkeep 2\\nkeep 3\\n')"
CONSUMER = "import sys; sys.stderr.write('c' * {noise}); sys.stderr.flush(); print(f'got {{sys.stdin.read().count(chr(10))}} lines', file=sys.stderr)"


@settings(max_examples=6, deadline=None)
@given(noise=st.integers(0, 300_000))
def test_a_pipe_between_chatty_children_never_stalls_and_passes_the_kept_lines(noise):
    producer, consumer = children.pipe(
        [*PYTHON, PRODUCER.format(noise=noise)],
        [*PYTHON, CONSUMER.format(noise=noise)],
        name="producer | consumer",
        limit=60,
        keep=lambda line: not line.startswith(b"SKIP"),
    )

    assert (producer.returncode, consumer.returncode) == (0, 0)
    assert producer.stderr == "p" * noise
    assert consumer.stderr == "c" * noise + "got 3 lines\n"


def test_a_pipe_past_its_limit_kills_both_children(tmp_path):
    pid_file = tmp_path / "pid"
    stuck = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(600)"

    with pytest.raises(ChildTimedOut) as stopped:
        children.pipe([*PYTHON, stuck], [*PYTHON, "import sys; sys.stdin.read()"], name="pg_restore | psql", limit=1)

    assert str(stopped.value) == "pg_restore | psql was still running after 1s and was stopped"
    assert gone(int(pid_file.read_text()))


def test_a_consumer_that_stops_reading_ends_the_producer_and_says_why():
    endless = "import sys\nwhile True: sys.stdout.write('row\\n' * 1000)"
    quitter = "import sys; sys.stdin.readline(); print('ERROR: syntax error at line 1', file=sys.stderr); sys.exit(3)"

    producer, consumer = children.pipe([*PYTHON, endless], [*PYTHON, quitter], name="producer | consumer", limit=60)

    assert consumer == children.Ended(3, "ERROR: syntax error at line 1\n")
    assert producer.returncode != 0  # stopped: nobody read what it wrote
