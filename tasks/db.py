"""The database: the embedded local server, the app database's lifecycle, sessions."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from invoke.exceptions import Exit

from ._cli import JSON_HELP, PROD_HELP, YES, app_database, confirm_destructive, console, number, print_json, settings, task


def _target(prod: bool, recover: bool = True):
    return app_database(prod, recover)


def _guard(target, action: str, yes: bool) -> None:
    if target.prod:
        confirm_destructive(f"{action} database {target.dbname!r}", target.dbname, str(target), yes)


def _sql_file(path: str | None, default: str) -> tuple[Path, str]:
    if path:
        return Path(path), path
    return settings().sql_dir / default, f"sql/{default}"


@task(help={"prod": PROD_HELP})
def up(c, prod=False):
    """Start the embedded local PostgreSQL and print its URL."""
    from cruddur.postgres import admin, urls

    target = _target(prod, recover=False)
    if not target.local:
        admin.wait_until_ready(target.url, timeout=0)
        print(f"{target} is reachable; the embedded server is not used while it is set")
        return
    print(f"local PostgreSQL is up: {urls.mask(target.url)} (data in {settings().pgdata})")


@task(help={"prod": PROD_HELP})
def down(c, prod=False):
    """Stop the embedded local PostgreSQL."""
    from cruddur.postgres import local_server
    from cruddur.postgres.target import Environment, environment

    chosen = environment(settings(), prod)
    if chosen is not Environment.LOCAL:
        print("nothing to stop: the db tasks use " + ("PROD_CONNECTION_URL" if prod else "CONNECTION_URL"))
        return
    pgdata = settings().pgdata
    if local_server.stop(pgdata):
        print(f"local PostgreSQL stopped (data kept in {pgdata})")
    else:
        print("local PostgreSQL was not running")


@task(help={"prod": PROD_HELP, "command": "run this SQL (psql -c) and exit instead of an interactive session"})
def connect(c, prod=False, command=None):
    """Open psql on the app database (password kept out of `ps`)."""
    from cruddur.postgres import psql

    target = _target(prod)
    code = psql.run(target.url, ["-c", command] if command else [], prefer_bundled=target.local)
    if code:
        raise Exit(code=code)


@task(help={"prod": PROD_HELP})
def create(c, prod=False):
    """Create the app database (an existing one is kept)."""
    from cruddur.postgres import admin

    target = _target(prod)
    if admin.create_database(target.url):
        print(f"created {target}")
    else:
        print(f"{target} already exists; left as it is")


@task(help={"prod": PROD_HELP, "yes": YES})
def drop(c, prod=False, yes=False):
    """Drop the app database, even while clients hold it."""
    from cruddur.postgres import admin

    target = _target(prod)
    _guard(target, "DROP", yes)
    if admin.drop_database(target.url):
        print(f"dropped {target}")
    else:
        print(f"{target} does not exist; nothing to drop")


@task(help={"prod": PROD_HELP, "yes": YES, "file": "load this file instead of sql/schema.sql"})
def schema_load(c, prod=False, yes=False, file=None):
    """Load sql/schema.sql in one transaction (replaces the tables)."""
    from cruddur.postgres import admin

    target = _target(prod)
    _guard(target, "replace the tables of", yes)
    path, label = _sql_file(file, "schema.sql")
    admin.run_sql_file(target.url, path, label)
    print(f"loaded {label} into {target}")


@task(help={"prod": PROD_HELP, "file": "load this file instead of sql/seed.sql"})
def seed(c, prod=False, file=None):
    """Load sql/seed.sql in one transaction."""
    from cruddur.postgres import admin

    target = _target(prod)
    path, label = _sql_file(file, "seed.sql")
    admin.run_sql_file(target.url, path, label)
    print(f"loaded {label} into {target}")


@task(help={"prod": PROD_HELP, "yes": YES})
def setup(c, prod=False, yes=False):
    """Reset the app database: schema, migrations, seed."""
    from cruddur.postgres import admin, migrations
    from cruddur.errors import CruddurError

    target = _target(prod, recover=False)  # the rebuild finishes an interrupted swap itself
    print(f"setting up {target}")
    _guard(target, "DROP and recreate", yes)
    started = time.monotonic()
    config = settings()
    schema, seed = _sql_file(None, "schema.sql"), _sql_file(None, "seed.sql")
    try:
        existed = admin.replace_database(
            target.url,
            lambda scratch: migrations.build(scratch, schema, config.sql_dir / "migrations", seed, label_root=config.sql_dir.parent),
        )
    except CruddurError as e:
        raise CruddurError(f"{e}; {target.dbname} was left as it was") from None
    print("  built a fresh database from sql/schema.sql, sql/migrations/, sql/seed.sql")
    print(f"  {'replaced' if existed else 'created'} {target.dbname}")
    print(f"ready in {time.monotonic() - started:.2f}s")


@task(
    help={
        "prod": PROD_HELP,
        "all": "include the server's own processes (checkpointer, autovacuum, ...)",
        "json": JSON_HELP,
        "watch": "refresh the table until Ctrl-C",
        "interval": "seconds between refreshes with --watch (default 2)",
    }
)
def sessions(c, prod=False, all=False, json_=False, watch=False, interval=None):
    """Show who is connected: state, waits, blockers."""
    from cruddur.postgres.sessions import list_sessions

    interval = number(interval, "--interval", default=2.0, minimum=0.1)
    url = _target(prod).url
    if json_:
        print_json(list_sessions(url, all))
        return
    if not watch:
        console().print(_sessions_table(list_sessions(url, all)))
        return
    from rich.live import Live

    with Live(_sessions_table(list_sessions(url, all)), console=console(), auto_refresh=False) as live:
        print(f"refreshing every {interval:g}s; Ctrl-C to stop", file=sys.stderr, flush=True)
        try:
            while True:
                time.sleep(interval)
                live.update(_sessions_table(list_sessions(url, all)), refresh=True)
        except KeyboardInterrupt:
            pass  # Ctrl-C is how a watch ends


def _sessions_table(rows: list[dict]):
    from rich.table import Table
    from rich.text import Text

    table = Table(caption=f"{len(rows)} session(s); * marks this one", caption_justify="left")
    for column in ("pid", "user", "db", "client", "application", "state", "type", "wait", "in state", "query time", "query", "blocked by"):
        table.add_column(column, overflow="fold", no_wrap=column in ("pid", "state"))
    for row in rows:
        blocked = ", ".join(str(pid) for pid in row["blocked_by"] or [])
        # Cells hold other clients' text (application names, queries): never read it as markup.
        cells = [
            f"{row['pid']}{' *' if row['this_session'] else ''}",
            row["user"],
            row["db"],
            row["client_addr"] or ("local" if row["backend_type"] == "client backend" else ""),
            row["app"],
            row["state"],
            row["backend_type"],
            row["wait_event"],
            _seconds(row["state_seconds"]),
            _seconds(row["query_seconds"]),
            row["query"],
        ]
        table.add_row(*(Text(cell or "") for cell in cells), Text(blocked, style="bold red"))
    return table


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.1f}s" if value < 120 else f"{value / 60:.0f}m"


@task(help={"prod": PROD_HELP, "yes": YES})
def kill(c, prod=False, yes=False):
    """End the other client sessions on the app database."""
    from cruddur.postgres import admin

    target = _target(prod)
    _guard(target, "end every other session on", yes)
    results = admin.terminate_other_sessions(target.url)
    if not results:
        print(f"no other sessions on {target}")
    for pid, ended in results:
        print(f"ended session {pid}" if ended else f"could not end session {pid}: it belongs to another role")
    if any(not ended for _, ended in results):
        raise Exit(code=1)


@task(help={"prod": PROD_HELP, "timeout": "seconds to wait before giving up (default 30)"})
def wait(c, prod=False, timeout=None):
    """Wait until the database server accepts connections."""
    from cruddur.postgres import admin

    timeout = number(timeout, "--timeout", default=30.0)
    target = _target(prod, recover=False)
    took = admin.wait_until_ready(target.url, timeout=timeout)
    print(f"{target} accepts connections (waited {took:.1f}s)")
