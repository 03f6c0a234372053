"""Running a file's statements through the driver as psql sends them: each on its own, so the
failing one's own line (and column, when the server gives a position) can be named.

In a transaction the statements go in one pipeline (psycopg's pipeline mode: one round trip for
all of them, as sending the whole file at once would be); outside one, each waits for the last.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import psycopg
from psycopg import pq

from ..errors import StatementFailed, one_line
from .sql_text import Statement

Query = tuple[object, object]  # (query, params) the runner adds: settings, bookkeeping


@dataclass(frozen=True)
class Transaction:
    """A file's statements, between the runner's own queries, to run all or nothing."""

    statements: Sequence[Statement]
    before: Sequence[Query] = ()  # run after BEGIN
    after: Sequence[Query] = ()  # run before COMMIT


def run_atomically(
    conn: psycopg.Connection, statements: Sequence[Statement], before: Sequence[Query] = (), after: Sequence[Query] = ()
) -> None:
    """BEGIN, the `before` queries, each statement, the `after` queries, COMMIT: all or nothing.
    `conn` is in autocommit mode; it is left outside any transaction."""
    run_transactions(conn, [Transaction(statements, before, after)])


def run_transactions(conn: psycopg.Connection, transactions: Sequence[Transaction]) -> list[list[psycopg.Cursor]]:
    """Each transaction in turn, in one pipeline (one round trip for all): for each, the cursors
    of its `after` queries (to read what they return). A failure rolls back the transaction it
    hit and runs none after it; the ones before it stay committed. `conn` is in autocommit mode."""
    steps: list[tuple[int, Statement | None, object, object, bool]] = []  # (transaction, statement, query, params, after)
    for index, transaction in enumerate(transactions):
        steps.append((index, None, "BEGIN", None, False))
        steps += [(index, None, query, params, False) for query, params in transaction.before]
        steps += [(index, statement, statement.text.encode(), None, False) for statement in transaction.statements]
        steps += [(index, None, query, params, True) for query, params in transaction.after]
        steps.append((index, None, "COMMIT", None, False))
    cursors: list[psycopg.Cursor] = []
    failure = None
    try:
        with conn.pipeline():
            # An error while queueing is caught inside the block (leaving it with one, psycopg
            # would log a second); one in the results comes from the block's end, its one sync.
            try:
                for _, _, query, params, _ in steps:
                    cursor = conn.cursor()
                    cursors.append(cursor)
                    # Never prepared: a file's DDL may change what an earlier statement's plan read.
                    cursor.execute(query, params, prepare=False)
            except psycopg.Error as e:
                failure = e
    except psycopg.Error as e:
        failure = failure or e
    results: list[list[psycopg.Cursor]] = [[] for _ in transactions]
    for (index, _, _, _, after), cursor in zip(steps, cursors):
        if after:
            results[index].append(cursor)
    if failure is None:
        return results
    if conn.info.transaction_status != pq.TransactionStatus.IDLE:
        conn.execute("ROLLBACK")
    # The pipeline stops at the failing step: it and every later one have no result.
    failed = next(
        (
            (index, statement)
            for (index, statement, _, _, _), cursor in zip(steps, cursors)
            if cursor.pgresult is None or cursor.pgresult.status == pq.ExecStatus.FATAL_ERROR
        ),
        (steps[len(cursors) - 1][0] if cursors else 0, None),  # never seen: the last step queued
    )
    raise StatementFailed(failed[1], failure, failed[0], results[: failed[0]])


def run_each(conn: psycopg.Connection, statements: Sequence[Statement], after_each: Callable[[int], None] | None = None) -> None:
    """Each statement in its own implicit transaction (for CREATE INDEX CONCURRENTLY and the
    like); after_each(number of statements done) once each has committed."""
    for done, statement in enumerate(statements, 1):
        try:
            conn.execute(statement.text.encode(), prepare=False)
        except psycopg.Error as e:
            raise StatementFailed(statement, e) from None
        if after_each:
            after_each(done)


def describe(label: str, failed: StatementFailed) -> str:
    """`label:line:column: SQLSTATE message (detail)`: the server's position mapped to the file,
    or the failing statement's first line when the server gives none."""
    return f"{location(label, failed)}: {postgres_message(failed.error)}"


def location(label: str, failed: StatementFailed) -> str:
    statement = failed.statement
    if statement is None:
        return label
    position = getattr(failed.error.diag, "statement_position", None)
    if position and position.isdigit():
        line, column = statement.location(int(position) - 1)
        return f"{label}:{line}:{column}"
    return f"{label}:{statement.line}"


def postgres_message(error: psycopg.Error) -> str:
    diag = error.diag
    message = diag.message_primary or one_line(error)
    if diag.message_detail:
        message += f" ({one_line(diag.message_detail)})"
    return f"{diag.sqlstate} {message}" if diag.sqlstate else message
