"""The blocking tree and ending its roots, on real chains of sessions waiting for advisory locks:
db.sessions --tree (table and JSON) and db.kill --root / --pid, checked by what a user sees and
by which sessions are alive afterwards."""

from __future__ import annotations

import json
import os
import re
import select
import time

import psycopg
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from psycopg import pq, sql

from cruddur.postgres import blocking, urls
from cruddur.postgres.sessions import list_sessions
from tests.helpers import assert_one_line_error, login_role, wait_for

DEADLINE = 30.0  # seconds any wait below may take before the test fails


def assert_tree_summary(shown: str, roots: int, waiting: int, kill: str) -> None:
    """The tree's last line: its root and waiting counts, and the kill it suggests. The tree is
    the whole server's: where the workers share one (TEST_DATABASE_URL), another test's waits
    may be on it too, so there the counts are this test's at least."""
    found = re.search(r"(\d+) root blocker\(s\), (\d+) waiting session\(s\); (.*) ends the roots", shown)
    assert found, shown
    counted = (int(found.group(1)), int(found.group(2)))
    if os.environ.get("TEST_DATABASE_URL"):
        assert counted[0] >= roots and counted[1] >= waiting, shown
    else:
        assert counted == (roots, waiting), shown
    assert found.group(3) == kill


def is_waiting(url: str, pid: int) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT cardinality(pg_blocking_pids(%s)) > 0", (pid,)).fetchone()[0]


def is_alive(url: str, pid: int) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT EXISTS (SELECT FROM pg_stat_activity WHERE pid = %s)", (pid,)).fetchone()[0]


class Holder:
    """A session in an open transaction holding advisory locks: exclusive ones, and shared ones."""

    def __init__(self, url: str, app: str, exclusive: list[int], shared: list[int] = ()):
        self.conn = psycopg.connect(url, application_name=app)
        self.pid = self.conn.info.backend_pid
        for key in exclusive:
            self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (key,))
        for key in shared:
            self.conn.execute("SELECT pg_advisory_xact_lock_shared(%s)", (key,))


class Waiter:
    """A session whose one statement (autocommit) takes the advisory locks `keys` in order: it
    holds the first ones while it waits for a later one, and lets all go when it finishes."""

    def __init__(self, url: str, app: str, keys: list[int]):
        self.url = url
        self.conn = psycopg.connect(url, autocommit=True, application_name=app)
        self.pid = self.conn.info.backend_pid
        statement = sql.SQL("SELECT {}").format(
            sql.SQL(", ").join(sql.SQL("pg_advisory_xact_lock({})").format(sql.Literal(k)) for k in keys)
        )
        self.conn.pgconn.send_query(statement.as_bytes(self.conn))  # sent; the answer is read in finish()
        wait_for(lambda: is_waiting(url, self.pid), f"session {self.pid} waiting")

    def finish(self) -> pq.ExecStatus:
        """Wait for the statement's answer (bounded); its status."""
        pgconn, deadline = self.conn.pgconn, time.monotonic() + DEADLINE
        pgconn.consume_input()
        while pgconn.is_busy():
            assert time.monotonic() < deadline, f"session {self.pid} still waits"
            select.select([pgconn.socket], [], [], 0.5)
            pgconn.consume_input()
        status = None
        while (result := pgconn.get_result()) is not None:
            status = pq.ExecStatus(result.status)
        return status


@pytest.fixture
def chains(database_url, server_sessions_alone):
    """Two chains on the test's database, each root in an open transaction:

    first (root)          holds lock 1, and 20 shared
      w1                  holds 2, waits for 1
        w2                holds 3, waits for 2
          w3              waits for 3
      both                waits for 20: blocked by first and second
    second (root)         holds 10 and 11, and 20 shared
      x1                  waits for 10
      x2                  waits for 11
      both                (again, marked)
    """
    first = Holder(database_url, "first-root", exclusive=[1], shared=[20])
    second = Holder(database_url, "second-root", exclusive=[10, 11], shared=[20])
    waiters = {
        "w1": Waiter(database_url, "w1", [2, 1]),
        "w2": Waiter(database_url, "w2", [3, 2]),
        "w3": Waiter(database_url, "w3", [3]),
        "x1": Waiter(database_url, "x1", [10]),
        "x2": Waiter(database_url, "x2", [11]),
        "both": Waiter(database_url, "both", [20]),
    }
    yield first, second, waiters
    for session in (first, second, *waiters.values()):
        session.conn.close()


def shape(nodes) -> list:
    """The tree as (application, marks, [waiters...]) for comparison."""
    return [
        (node.session["app"], sorted(node.also_waits_for), node.cycle, shape(node.waiters))
        for node in nodes
        if node.session is None or node.session["db"] is not None
    ]


def test_the_tree_nests_each_waiter_under_who_it_waits_for(chains, database_url):
    first, second, waiters = chains
    found = blocking.tree([row for row in list_sessions(database_url) if row["db"] == urls.dbname(database_url)])
    assert shape(found) == [
        (
            "first-root",
            [],
            False,
            [("w1", [], False, [("w2", [], False, [("w3", [], False, [])])]), ("both", [second.pid], False, [])],
        ),
        ("second-root", [], False, [("x1", [], False, []), ("x2", [], False, []), ("both", [first.pid], False, [])]),
    ]
    w1 = found[0].waiters[0].session
    assert w1["wait_event"] == "Lock:advisory" and w1["state"] == "active" and w1["waited_seconds"] >= 0
    root = found[0].session
    assert root["state"] == "idle in transaction" and root["idle_in_transaction_seconds"] >= 0
    assert root["transaction_seconds"] >= root["idle_in_transaction_seconds"]
    assert root["blocked_by"] == [] and sorted(found[0].waiters[1].session["blocked_by"]) == sorted([first.pid, second.pid])


def test_sessions_tree_shows_the_chains_on_one_line_each(chains, run_task, database_url):
    first, second, waiters = chains
    result = run_task("db.sessions", "--tree", env={"CONNECTION_URL": database_url, "COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    first_line = next(i for i, line in enumerate(lines) if f"{first.pid} | idle in transaction for " in line)
    second_line = next(i for i, line in enumerate(lines) if f"{second.pid} | idle in transaction for " in line)
    assert first_line < second_line  # the older transaction first
    chain = lines[first_line : first_line + 5]
    for index, name in enumerate(["w1", "w2", "w3"], start=1):
        assert f"{waiters[name].pid} | waiting " in chain[index] and "on Lock:advisory | active | " in chain[index]
        assert f" | {name} (postgres@" in chain[index]
    # Each level is nested deeper than the one it waits for.
    indents = [len(line) - len(line.lstrip(" │├└─")) for line in chain[:4]]
    assert indents == sorted(indents) and len(set(indents)) == 4
    both = [line for line in lines if f"{waiters['both'].pid} | waiting " in line]
    assert len(both) == 2
    assert f"also waits for {second.pid}" in both[0] and f"also waits for {first.pid}" in both[1]
    assert " | first-root (" in lines[first_line] and " | second-root (" in lines[second_line]
    assert_tree_summary(result.stdout, 2, 6, "inv db.kill --root")


def test_sessions_tree_on_prod_suggests_the_kill_on_prod(chains, run_task, database_url):
    result = run_task("db.sessions", "--tree", "--prod", env={"PROD_CONNECTION_URL": database_url, "COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    assert_tree_summary(result.stdout, 2, 6, "inv db.kill --prod --root")


@pytest.mark.parametrize("columns", ["80", "120"])
def test_sessions_tree_never_cuts_the_wait_event(chains, run_task, database_url, columns):
    _, _, waiters = chains
    result = run_task("db.sessions", "--tree", env={"CONNECTION_URL": database_url, "COLUMNS": columns})
    # This test's waiters only: on a shared server another test's session may be waiting too.
    waiting = [line for line in result.stdout.splitlines() for w in waiters.values() if f"── {w.pid} | waiting " in line]
    assert len(waiting) == 7  # 'both' shows under each of its two roots
    assert all("on Lock:advisory |" in line for line in waiting)
    assert all(len(line) <= int(columns) for line in result.stdout.splitlines())


def test_sessions_tree_json_is_the_same_tree(chains, run_task, database_url):
    first, second, waiters = chains
    result = run_task("db.sessions", "--tree", "--json", env={"CONNECTION_URL": database_url})
    assert result.returncode == 0, result.stderr
    roots = [node for node in json.loads(result.stdout) if node["db"] == urls.dbname(database_url)]
    assert [root["pid"] for root in roots] == [first.pid, second.pid]
    w1 = roots[0]["waiters"][0]
    assert (w1["app"], w1["query"]) == ("w1", "SELECT pg_advisory_xact_lock(2), pg_advisory_xact_lock(1)")
    assert [w["app"] for w in w1["waiters"][0]["waiters"]] == ["w3"]
    assert [(w["app"], w["also_waits_for"]) for w in roots[1]["waiters"]] == [("x1", []), ("x2", []), ("both", [first.pid])]
    assert {"waited_seconds", "idle_in_transaction_seconds", "transaction_seconds", "wait_event", "state"} <= set(w1)


@pytest.mark.skipif(
    bool(os.environ.get("TEST_DATABASE_URL")), reason="the tree is the whole server's: on a shared one another test may be waiting"
)
def test_no_waits_says_so(run_task, database_url):
    with psycopg.connect(database_url):
        result = run_task("db.sessions", "--tree", env={"CONNECTION_URL": database_url})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("no session waits for another (")


def test_kill_root_ends_the_roots_and_frees_every_waiter(chains, run_task, database_url):
    first, second, waiters = chains
    result = run_task("db.kill", "--root", env={"CONNECTION_URL": database_url})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("2 root blocker(s) on dev database ")
    assert lines[1].startswith(f"  blocks 4 session(s): {first.pid} | idle in transaction for ")
    assert lines[2].startswith(f"  blocks 3 session(s): {second.pid} | idle in transaction for ")
    assert lines[3:] == [f"ended session {first.pid}", f"ended session {second.pid}"]
    for waiter in waiters.values():
        assert waiter.finish() == pq.ExecStatus.TUPLES_OK  # it got its locks: freed, not ended
        assert waiter.conn.execute("SELECT 1").fetchone() == (1,)
    assert not is_alive(database_url, first.pid) and not is_alive(database_url, second.pid)
    again = run_task("db.kill", "--root", env={"CONNECTION_URL": database_url})
    assert again.stdout.startswith("no session blocks another on dev database ")


def test_kill_root_dry_run_lists_and_ends_nothing(chains, run_task, database_url):
    first, second, waiters = chains
    result = run_task("db.kill", "--root", "--dry-run", env={"CONNECTION_URL": database_url})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("2 root blocker(s) on dev database ") and lines[-1] == "dry run: nothing changed"
    assert all(is_alive(database_url, session.pid) for session in (first, second, *waiters.values()))
    assert is_waiting(database_url, waiters["w3"].pid)


def test_kill_pid_ends_only_that_session(chains, run_task, database_url):
    first, second, waiters = chains
    result = run_task("db.kill", "--pid", str(waiters["w3"].pid), env={"CONNECTION_URL": database_url})
    assert (result.returncode, result.stdout) == (0, f"ended session {waiters['w3'].pid}\n")
    assert not is_alive(database_url, waiters["w3"].pid)
    assert all(is_alive(database_url, session.pid) for session in (first, second, waiters["w2"]))


def test_kill_pid_of_no_session_is_one_line(run_task, database_url):
    for pid in ("999999", "99999999999"):  # the second beyond a 4-byte integer, which a pid is
        line = assert_one_line_error(run_task("db.kill", "--pid", pid, env={"CONNECTION_URL": database_url}))
        assert line == f"error: no session has pid {pid}; inv db.sessions lists them"
    line = assert_one_line_error(run_task("db.kill", "--pid", "x", env={"CONNECTION_URL": database_url}))
    assert line == "error: --pid takes a whole number, not 'x'"
    line = assert_one_line_error(run_task("db.kill", "--pid", "5", "--root", env={"CONNECTION_URL": database_url}))
    assert line == "error: --root and --pid choose different sessions; give one of them"


def test_a_root_the_role_may_not_signal_is_reported_and_kept(run_task, database_url, server_sessions_alone):
    with login_role(database_url, "killer_") as as_role:
        root = Holder(database_url, "superuser-root", exclusive=[7])
        waiter = Waiter(as_role, "own-waiter", [7])
        result = run_task("db.kill", "--root", env={"CONNECTION_URL": as_role})
        assert result.returncode == 1
        assert result.stdout.splitlines()[-1] == (
            f"did not end session {root.pid}: this role may not signal it (another role's session, or a superuser's)"
        )
        assert is_alive(database_url, root.pid) and is_waiting(database_url, waiter.pid)
        root.conn.rollback()
        assert waiter.finish() == pq.ExecStatus.TUPLES_OK
        root.conn.close()
        waiter.conn.close()


def test_kill_root_on_prod_lists_then_refuses_without_a_terminal(chains, run_task, database_url):
    first, second, _ = chains
    result = run_task("db.kill", "--root", "--prod", env={"PROD_CONNECTION_URL": database_url})
    assert result.returncode == 1
    assert result.stdout.startswith("2 root blocker(s) on prod database ")
    assert "needs confirmation; run it on a terminal or pass --yes" in result.stderr
    assert is_alive(database_url, first.pid) and is_alive(database_url, second.pid)


def test_a_root_that_stopped_blocking_is_left_alone(database_url, server_sessions_alone):
    holder = Holder(database_url, "gone-quiet", exclusive=[5])
    waiter = Waiter(database_url, "waiter", [5])
    planned = [node.pid for node in blocking.tree(list_sessions(database_url))]
    assert holder.pid in planned
    holder.conn.rollback()  # between the plan and the act
    waiter.finish()
    assert blocking.end_roots(database_url, [holder.pid]) == [blocking.Ended(holder.pid, False, "no longer a root blocker; left alone")]
    assert is_alive(database_url, holder.pid)
    holder.conn.close()
    waiter.conn.close()


# Waits drawn at random: session i waits for the sessions listed (cycles included, as
# pg_blocking_pids may show for a moment, and blockers that pg_stat_activity does not show).
waits = st.dictionaries(st.integers(1, 12), st.lists(st.integers(1, 15), max_size=3, unique=True), max_size=12)


def _rows(drawn: dict[int, list[int]]) -> list[dict]:
    return [{"pid": pid, "blocked_by": [b for b in blockers if b != pid], "transaction_seconds": None} for pid, blockers in drawn.items()]


@given(waits)
@settings(deadline=None)  # a pure function, but the machine may be busy: no per-example time limit
@example({1: [2], 2: [1], 3: [1]})  # a cycle that no root reaches
@example({3: [9], 9: [4], 4: [9]})  # a lower pid waiting behind a cycle is not its root
@example({1: [2], 2: [3], 3: [1, 4], 5: [1]})  # a cycle below a root the sessions do not show
def test_every_waiter_appears_under_each_of_its_blockers_and_the_tree_ends(drawn):
    rows = _rows(drawn)
    waits_for = {row["pid"]: row["blocked_by"] for row in rows}
    blockers = {blocker for found in waits_for.values() for blocker in found}
    waiters_of = {pid: {w for w, found in waits_for.items() if pid in found} for pid in blockers}
    roots = blocking.tree(rows)
    shown = set()

    def walk(node, branch):
        shown.add(node.pid)
        assert node.cycle == (node.pid in branch)
        if not node.cycle:  # each appearance lists every session waiting for it
            assert {waiter.pid for waiter in node.waiters} == waiters_of.get(node.pid, set())
            assert not any(waiter.pid == node.pid for waiter in node.waiters)
        for waiter in node.waiters:
            assert set(waiter.also_waits_for) == set(waits_for[waiter.pid]) - {node.pid}
            walk(waiter, branch | {node.pid})

    for root in roots:
        walk(root, frozenset())
    assert len({root.pid for root in roots}) == len(roots)
    # The true roots are all there; any other root stands for a cycle nothing else reaches.
    true_roots = {pid for pid in blockers if not waits_for.get(pid)}
    assert true_roots <= {root.pid for root in roots}
    assert all(root.pid in true_roots or root.pid in _cyclic(rows) for root in roots)
    assert shown == blockers | {pid for pid, found in waits_for.items() if found}


def _cyclic(rows) -> set[int]:
    """pids on a cycle of waits."""
    waits_for = {row["pid"]: row["blocked_by"] for row in rows}
    found = set()
    for start in waits_for:
        seen, todo = set(), list(waits_for[start])
        while todo:
            pid = todo.pop()
            if pid == start:
                found.add(start)
                break
            if pid not in seen:
                seen.add(pid)
                todo.extend(waits_for.get(pid, []))
    return found


def test_sessions_waiting_on_each_other_still_show():
    rows = _rows({1: [2], 2: [1], 3: [2]})
    roots = blocking.tree(rows)
    assert [root.pid for root in roots] == [1]
    assert [(n.pid, n.cycle) for n in roots[0].waiters] == [(2, False)]
    assert sorted((n.pid, n.cycle) for n in roots[0].waiters[0].waiters) == [(1, True), (3, False)]


def test_kill_pid_on_prod_shows_the_session_before_it_asks(chains, run_task, database_url):
    first, second, waiters = chains
    result = run_task("db.kill", "--prod", "--pid", str(first.pid), env={"PROD_CONNECTION_URL": database_url})
    assert result.returncode == 1 and result.stderr.startswith("refused: end session")  # no terminal, no --yes
    plan = result.stdout.splitlines()
    assert plan[0] == f"will end session {first.pid} on the server of prod database {urls.describe(database_url)}:"
    app = first.conn.info.parameter_status("application_name")
    assert plan[1].startswith(f"  {first.pid} | idle in transaction for ")
    assert plan[1].endswith(f" | {app} (postgres@{urls.dbname(database_url)}) | SELECT pg_advisory_xact_lock_shared($1)")
    assert is_alive(database_url, first.pid)
