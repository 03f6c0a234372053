"""The run_task fixture: a task run in the test's process answers as `inv` in a child process does,
and leaves nothing of itself behind for the next test."""

import logging
import os
import sys
import warnings

import pytest

from tests.helpers import closed_port_url

SAMPLES = [
    ("db.activities", "--limit", "abc"),  # a bad flag: exit 1 before connecting
    ("db.sessions", "--prod"),  # a missing variable
    ("db.seed", "--lock-timeout", "soon"),
    ("db.sessions", "--no-such-flag"),  # Invoke's own parse error
    ("db.no-such-task",),
]


@pytest.mark.parametrize("args", SAMPLES, ids=" ".join)
def test_an_in_process_run_answers_as_inv_does(inv, run_task, args):
    env = {"CONNECTION_URL": closed_port_url()}
    child, here = inv(*args, env=env), run_task(*args, env=env)
    assert child.returncode != 0
    assert (here.returncode, here.stdout, here.stderr) == (child.returncode, child.stdout, child.stderr)


def test_an_in_process_run_answers_with_the_tasks_output(run_task, database_url):
    result = run_task("db.sessions", "--json", env={"CONNECTION_URL": database_url})
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.startswith("[")


def test_an_in_process_run_leaves_the_process_as_it_found_it(run_task, database_url):
    import tasks

    before = {
        "environ": dict(os.environ),
        "cwd": os.getcwd(),
        "streams": (sys.stdin, sys.stdout, sys.stderr),
        "help": {name: dict(tasks.ns[name].help) for name in tasks.ns.task_names},
        "handlers": {
            name: list(logger.handlers) for name, logger in logging.root.manager.loggerDict.items() if isinstance(logger, logging.Logger)
        },
        "filters": list(warnings.filters),
    }
    for args in [("db.sessions", "--json"), ("db.activities", "--limit", "x"), ("lambda.invoke",), ("db.sessions", "-h")]:
        run_task(*args, env={"CONNECTION_URL": database_url, "COLUMNS": "100"})
    assert dict(os.environ) == before["environ"]
    assert os.getcwd() == before["cwd"]
    assert (sys.stdin, sys.stdout, sys.stderr) == before["streams"]
    # Parsing flags consumes a task's help texts: the texts the modules set must still be there.
    assert before["help"]["db.sessions"]["json"] == tasks._cli.JSON_HELP
    assert {name: dict(tasks.ns[name].help) for name in tasks.ns.task_names} == before["help"]
    assert all(list(logging.getLogger(name).handlers) == handlers for name, handlers in before["handlers"].items())
    assert list(warnings.filters) == before["filters"]
