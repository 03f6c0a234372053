"""Who stalls whom: the blocking tree of the client sessions (pg_blocking_pids), and ending its
roots, the sessions that block others and wait on no one."""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg
from psycopg import errors

from ..errors import DatabaseError, one_line
from ..timeouts import TERMINATE_WAIT
from .connect import connect
from .sessions import read_sessions


@dataclass
class Node:
    """One appearance of a session in the tree. A session waiting for several others appears
    under each of them: `also_waits_for` names the others. `cycle`: it is already further up this
    branch (sessions waiting on each other, which pg_blocking_pids can show for a moment), so its
    waiters are not repeated. `seen`: the session's row, or None when pg_stat_activity does not
    show it (a server process, or gone since)."""

    pid: int
    session: dict | None
    waiters: list[Node] = field(default_factory=list)
    also_waits_for: list[int] = field(default_factory=list)
    cycle: bool = False

    def behind(self) -> set[int]:
        """Every session waiting behind this one, directly or down the chain (each once)."""
        pids: set[int] = set()
        for waiter in self.waiters:
            pids.add(waiter.pid)
            pids |= waiter.behind()
        return pids

    def as_json(self) -> dict:
        return {
            "pid": self.pid,
            **(self.session or {"visible": False}),
            "also_waits_for": self.also_waits_for,
            "cycle": self.cycle,
            "waiters": [waiter.as_json() for waiter in self.waiters],
        }


def root_pids(sessions: list[dict]) -> list[int]:
    """The sessions that block others and wait on no one, the longest in a transaction first.

    A blocker that pg_stat_activity does not show counts as a root. Sessions that only wait on
    each other (a cycle, with no root above it) are represented by their lowest pid."""
    by_pid, waits_for = _graph(sessions)
    blocking = {blocker for blockers in waits_for.values() for blocker in blockers}
    roots = [pid for pid in blocking if not waits_for.get(pid)]
    waiters = _waiters_of(waits_for)
    reached = _reachable(roots, waiters)
    for pid in sorted(pid for pid in waits_for if waits_for[pid] and pid not in reached):
        # The lowest pid on a cycle nobody above reaches (not one merely waiting behind it).
        if pid not in reached and pid in _reachable(waiters.get(pid, []), waiters):
            roots.append(pid)
            reached |= _reachable([pid], waiters)

    def oldest_first(pid: int):
        seconds = (by_pid.get(pid) or {}).get("transaction_seconds")
        return (seconds is None, -(seconds or 0), pid)

    return sorted(roots, key=oldest_first)


def _graph(sessions: list[dict]) -> tuple[dict[int, dict], dict[int, list[int]]]:
    """Each session by pid, and whom each waits for (each blocker once, in pg_blocking_pids' order)."""
    return {row["pid"]: row for row in sessions}, {row["pid"]: list(dict.fromkeys(row["blocked_by"] or [])) for row in sessions}


def _waiters_of(waits_for: dict[int, list[int]]) -> dict[int, list[int]]:
    waiters: dict[int, list[int]] = {}
    for pid in sorted(waits_for):
        for blocker in waits_for[pid]:
            waiters.setdefault(blocker, []).append(pid)
    return waiters


def _reachable(starts: list[int], waiters: dict[int, list[int]]) -> set[int]:
    seen, todo = set(), list(starts)
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo.extend(waiters.get(pid, []))
    return seen


def tree(sessions: list[dict]) -> list[Node]:
    """The blocking tree: its roots first (root_pids), each waiter nested under every session it
    waits for. Sessions that neither block nor wait are left out."""
    by_pid, waits_for = _graph(sessions)
    waiters = _waiters_of(waits_for)

    def grow(pid: int, parent: int | None, branch: frozenset[int]) -> Node:
        node = Node(pid, by_pid.get(pid), also_waits_for=[other for other in waits_for.get(pid, []) if other != parent])
        if pid in branch:
            node.cycle = True
            return node
        node.waiters = [grow(waiter, pid, branch | {pid}) for waiter in waiters.get(pid, [])]
        return node

    return [grow(pid, None, frozenset()) for pid in root_pids(sessions)]


@dataclass(frozen=True)
class Ended:
    pid: int
    ended: bool
    reason: str = ""  # why not, when not
    kept: bool = False  # it still runs: this role may not signal it, or it did not end in time


def roots_on(roots: list[Node], dbname: str) -> list[Node]:
    """The root blockers whose own session is on database `dbname`: db.kill acts on the app
    database only, never on another database's sessions that share the server."""
    return [node for node in roots if node.session is not None and node.session.get("db") == dbname]


def end_roots(url: str, planned: list[int]) -> list[Ended]:
    """End the planned root blockers that are still roots now (the plan was shown and confirmed;
    a session that has since stopped blocking, or started waiting, is left alone). Never this
    connection's own session. A root this role may not signal is kept (ended False)."""
    with connect(url, autocommit=True) as conn:
        now = read_sessions(conn)
        roots = set(root_pids(now))
        own = conn.info.backend_pid
        results = []
        for pid in planned:
            if pid == own:
                results.append(Ended(pid, False, "it is this task's own connection"))
            elif pid not in roots:
                results.append(Ended(pid, False, "no longer a root blocker; left alone"))
            else:
                results.append(_terminate(conn, pid))
        return results


def end_session(url: str, pid: int) -> Ended:
    """End session `pid` (not this connection's own; one that has gone by then is reported so)."""
    with connect(url, autocommit=True) as conn:
        if pid == conn.info.backend_pid:
            raise DatabaseError(f"session {pid} is this task's own connection; nothing to end")
        return _terminate(conn, pid)


def _terminate(conn: psycopg.Connection, pid: int) -> Ended:
    try:
        ended = conn.execute("SELECT pg_terminate_backend(%s, %s)", (pid, round(TERMINATE_WAIT * 1000))).fetchone()[0]
    except errors.InsufficientPrivilege:
        return Ended(pid, False, "this role may not signal it (another role's session, or a superuser's)", kept=True)
    except psycopg.Error as e:
        raise DatabaseError(f"cannot end session {pid}: {one_line(e)}") from None
    if ended:
        return Ended(pid, True)
    if not conn.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone():
        return Ended(pid, False, "it had already ended")
    return Ended(pid, False, f"it had not ended after {TERMINATE_WAIT:g}s", kept=True)
