"""The statements that cost the most, from pg_stat_statements (part of the db collection)."""

from __future__ import annotations

import sys

from cruddur.errors import UsageError
from cruddur.formats import duration

from ._cli import JSON_HELP, PROD_HELP, YES_HELP, app_database, console, number, on_one_line, print_json, printable, show, task
from ._protocol import begin, is_dry

DEFAULT_LIMIT = 10


@task(
    help={
        "prod": PROD_HELP,
        "yes": YES_HELP,
        "limit": f"show this many statements, most total time first (default {DEFAULT_LIMIT}; 0 for all)",
        "json": JSON_HELP,
        "reset": "forget the statistics gathered so far (pg_stat_statements_reset()) instead of showing them",
    }
)
def slow(c, prod=False, yes=False, limit=None, json_=False, reset=False):
    """Show the statements with the most total time (pg_stat_statements)."""
    from cruddur.errors import DatabaseError
    from cruddur.postgres import slow as stats

    if reset and (json_ or limit is not None):
        raise UsageError("--reset forgets the statistics and shows none; give it without --json and --limit")
    limit = number(limit, "--limit", default=DEFAULT_LIMIT, integer=True)
    target = app_database(prod, dry=is_dry(c))
    found = stats.readiness(target.url)
    if found is stats.Readiness.NOT_LOADED:
        raise DatabaseError(_how_to_load(target))
    # The plan: what this run writes, confirmed once on prod before any of it.
    writes = []  # (what the question names, the plan's line)
    if found is stats.Readiness.NOT_CREATED:
        print(f"{stats.EXTENSION} is loaded, but the extension is not created in {target.dbname}; it will be created", file=sys.stderr)
        writes.append((f"create the extension {stats.EXTENSION}", f"will create the extension {stats.EXTENSION} in {target}"))
    if reset:
        writes.append((f"reset the {stats.EXTENSION} statistics", f"will reset the {stats.EXTENSION} statistics of the server of {target}"))
    if writes:
        action = " and ".join(question for question, _ in writes) + " on"
        if not begin(c, target, action, [line for _, line in writes], yes=yes, backup=False):
            return
    if found is stats.Readiness.NOT_CREATED:
        stats.create_extension(target.url)
        print(f"created the extension {stats.EXTENSION} in {target}", file=sys.stderr)
    if reset:
        stats.reset(target.url)
        print(f"reset the {stats.EXTENSION} statistics on the server of {target}")
        return
    statements = stats.top_statements(target.url, limit or None)
    if json_:
        print_json(statements)
        return
    show(_statements_table(statements, target))


def _how_to_load(target) -> str:
    if target.local:
        return (
            "pg_stat_statements is not loaded: the local server was started without it (an older start);"
            " restart it to load it: inv db.down && inv db.up"
        )
    return (
        f"pg_stat_statements is not loaded on the server of {target}: add it to shared_preload_libraries"
        " (on RDS: in the DB parameter group, then reboot the instance) and restart the server"
    )


def _statements_table(statements, target):
    from rich.console import Group
    from rich.text import Text

    from ._tables import Column, fitted_table

    if not statements:
        return Text(f"no statements recorded yet in {target.dbname}")
    cells = [
        {
            "calls": str(s.calls),
            "total": duration(s.total_ms / 1000),
            "mean": duration(s.mean_ms / 1000),
            "rows": str(s.rows),
            "query": printable(on_one_line(s.query)),  # other people's text, shown escaped
        }
        for s in statements
    ]
    columns = [*(Column(header, right=True) for header in ("calls", "total", "mean", "rows")), Column("query", flexible=True)]
    caption = f"{len(statements)} statement(s) in {target.dbname}, most total time first; --json shows every field and the whole query"
    return Group(fitted_table(cells, columns, console().width), Text(caption))
