"""The database: the embedded local server, the app database's lifecycle and status, psql, sessions."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from invoke.exceptions import Exit

from cruddur.errors import UsageError
from cruddur.formats import byte_size, duration
from cruddur.timeouts import CONNECT_TIMEOUT, FILE_LOAD_LOCK_TIMEOUT, SERVER_READY_TIMEOUT, SESSIONS_REFRESH_SECONDS

from ._cli import (
    JSON_HELP,
    PROD_HELP,
    YES_HELP,
    app_database,
    console,
    for_target,
    lock_timeout_flag,
    number,
    on_one_line,
    print_json,
    printable,
    settings,
    show,
    task,
)
from ._protocol import NO_BACKUP_HELP, begin, confirm, dry_run_shown, is_dry, nothing_to_do, table_lines, verify
from ._tables import Column, fitted_table


def _sql_file(path: str | None, default: str) -> tuple[Path, str]:
    if path:
        return Path(path), path
    return settings().sql_dir / default, f"sql/{default}"


@task(help={"prod": PROD_HELP})
def up(c, prod=False):
    """Start the embedded local PostgreSQL; print its URL and the line that gives it to other clients."""
    from cruddur.postgres import admin, local_server, urls

    target = app_database(prod, recover=False)
    if not target.local:
        variable = "PROD_CONNECTION_URL" if target.prod else "CONNECTION_URL"
        _answers(target, f"{variable} is set, so the embedded server is not used")
        print(f"{target} is reachable; the embedded server is not used while {variable} is set")
        return
    # "up" only once a connection worked, not on the word of a lock file.
    admin.wait_until_ready(target.url, timeout=CONNECT_TIMEOUT)
    config = settings()
    print(f"local PostgreSQL is up: {urls.mask(target.url)} (data in {config.pgdata})")
    found = local_server.lock_file(config.pgdata)
    if found is None or found.listen_address != local_server.LISTEN_ADDRESS:
        print("it listens on its unix socket only (an older start); for TCP, restart it: inv db.down && inv db.up")
        return
    if found.port != config.local_port():
        print(f"it listens on port {found.port}, not CRUDDUR_PGPORT's {config.local_port()}; restart it to move: inv db.down && inv db.up")
    print(f"for the Flask backend and GUI tools (TCP; the password is in {local_server.password_file(config.pgdata)}):")
    print(local_server.export_line(config.pgdata, found.port, target.dbname))


def _answers(target, why: str) -> None:
    """One try at the target's server (a missing app database still answers), or one line that
    says `why` this server and what to do."""
    from cruddur.errors import DatabaseError, NoSuchDatabase
    from cruddur.postgres.connect import connect

    try:
        connect(target.url).close()
    except NoSuchDatabase:
        return
    except DatabaseError as e:
        raise DatabaseError(f"{why}; {e}; {_NOT_ANSWERING[str(target.environment)]}") from None


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


@task(help={"prod": PROD_HELP, "json": JSON_HELP})
def status(c, prod=False, json_=False):
    """Show the database in use without starting anything: server, URL, data folder, app database.

    Exits 1 when that database's server does not answer (for scripts)."""
    from cruddur.postgres import status as status_
    from cruddur.postgres.target import Environment, environment, resolve

    config = settings()
    chosen = environment(config, prod)
    if chosen is Environment.LOCAL:
        found = status_.local(config.pgdata, config.local_port(), config.sql_dir / "migrations")
    else:
        found = status_.remote(resolve(config, prod).url, str(chosen), config.sql_dir / "migrations")
    if json_:
        print_json(found)
    else:
        for label, value in _status_lines(found):
            print(f"{label:<13} {value}")
    if not found.answers:
        raise Exit(code=1)


# What moves the user on when a server does not answer, by environment.
_NOT_ANSWERING = {
    "dev": "start that server, or use the embedded one instead: unset CONNECTION_URL && inv db.up",
    "prod": "check the instance, then this workspace's access to it: inv rds.status, then inv sg.update",
}


def _status_lines(found) -> list[tuple[str, str]]:
    server = f"PostgreSQL {found.server_version}" if found.server_version else "PostgreSQL"
    if found.environment == "local":
        state = (
            f"running, {server}"
            if found.answers
            else f"{found.reason}" + (f" (data folder of PostgreSQL {found.server_version})" if found.server_version else "")
        )
        lines = [("environment", "local (the embedded server; CONNECTION_URL is unset)"), ("server", state), ("url", found.url)]
        if found.tcp_url and found.tcp_url != found.url:
            lines.append(("tcp", f"{found.tcp_url} (password in {found.password_file})"))
        elif found.answers:
            lines.append(("tcp", "not listening (an older start); restart it: inv db.down && inv db.up"))
        size = "not created yet" if found.data_bytes is None else byte_size(found.data_bytes)
        lines.append(("data folder", f"{found.data_folder} ({size})"))
    else:
        state = f"answers, {server}" if found.answers else f"does not answer: {found.reason}"
        shown = "dev (CONNECTION_URL is set: the embedded server is not used)" if found.environment == "dev" else found.environment
        lines = [("environment", shown), ("server", state), ("url", found.url)]
    lines.append(("app database", _database_line(found)))
    if found.migrations is not None:
        counts = ", ".join(f"{count} {state}" for state, count in sorted(found.migrations.items())) or "none in sql/migrations/"
        if found.migrations.get("pending"):
            counts += f"; apply them with: inv db.migrate{_flag(found)}"
        lines.append(("migrations", counts))
    if not found.answers and found.environment != "local":
        lines.append(("next", _NOT_ANSWERING[found.environment]))
    return lines


def _flag(found) -> str:
    return " --prod" if found.environment == "prod" else ""


def _database_line(found) -> str:
    from cruddur.postgres.admin import swap_names

    name = found.database
    if found.database_exists is None:
        return f"{name}: unknown while the server is not running" if found.environment == "local" else f"{name}: unknown"
    if found.environment == "prod":
        finish = "a write task on --prod finishes the swap once you confirm: inv db.migrate --prod"
    else:
        finish = "the next db task finishes the swap: inv db.migrations"
    scratch, aside = swap_names(name)
    left = " and ".join(repr(leftover) for leftover in found.swap_leftovers)
    if found.database_exists:
        return f"{name}: exists" + (f"; {left} left over from an interrupted db.setup or db.restore; {finish}" if left else "")
    if aside in found.swap_leftovers:
        rebuilt = f" (the rebuilt one is {scratch!r})" if scratch in found.swap_leftovers else ""
        return f"{name}: missing: an interrupted db.setup or db.restore set it aside as {aside!r}{rebuilt}; {finish}"
    dropped = f" ({left} is left over from an interrupted db.setup or db.restore; setup drops it)" if left else ""
    return f"{name}: does not exist{dropped}; create it with: inv db.setup{_flag(found)}"


# What the interactive psql on production shows before each line: where you are.
PROD_PROMPT = "%[%033[1;31m%]PRODUCTION%[%033[0m%] %/%R%# "


@task(
    help={
        "prod": PROD_HELP,
        "command": "run this SQL (psql -c) and exit instead of an interactive session; on --prod read-only unless --write",
        "write": "with --prod --command: let the SQL write (shows the plan, asks, backs up first)",
        "yes": YES_HELP,
        "no_backup": NO_BACKUP_HELP,
    }
)
def connect(c, prod=False, command=None, write=False, yes=False, no_backup=False):
    """Open psql on the app database (password kept out of `ps`); on --prod commands run read-only."""
    from cruddur.postgres import psql
    from cruddur.postgres.connect import connect as check

    if write and command is None:
        raise UsageError("--write goes with --command (the interactive session on --prod is yours to steer)")
    dry = is_dry(c)
    target = app_database(prod, dry=dry)
    # A missing server or database is one line here; psql would print its own and exit 2.
    check(target.url).close()
    args, env = (["-c", command] if command is not None else []), {}
    writes = command is not None and (write or not target.prod)
    if writes:
        plan = [f"will run on {target}: {printable(command)}", "its tables now:", *table_lines(target.url)]
        if not begin(c, target, "run SQL that may write in", plan, yes=yes, no_backup=no_backup):
            return
    elif command is not None:
        if dry_run_shown(c, [f"would run on {target}, read-only: {printable(command)}"]):
            return
        env = psql.read_only_env()
    elif target.prod:
        args = ["--variable", f"PROMPT1={PROD_PROMPT}", "--variable", f"PROMPT2={PROD_PROMPT}"]
    code = psql.run(target.url, args, prefer_bundled=target.local, env=env)
    if code:
        raise Exit(code=code)
    if writes and target.prod:
        verify(target)


@task(help={"prod": PROD_HELP, "yes": YES_HELP})
def create(c, prod=False, yes=False):
    """Create the app database (an existing one is kept)."""
    from cruddur.postgres import admin

    target = app_database(prod, recover=False, dry=is_dry(c))  # create_database settles a half-done swap under its lock
    if not begin(c, target, "create", [f"will create {target} unless it exists"], yes=yes, backup=False, recover=False):
        return
    if admin.create_database(target.url, report=_say):
        print(f"created {target}")
    else:
        print(f"{target} already exists; left as it is")


def _say(line: str) -> None:
    print(line, file=sys.stderr)


@task(help={"prod": PROD_HELP, "yes": YES_HELP, "no_backup": NO_BACKUP_HELP})
def drop(c, prod=False, yes=False, no_backup=False):
    """Drop the app database, even while clients hold it."""
    from cruddur.postgres import admin

    target = app_database(prod, recover=False, dry=is_dry(c))  # drop_database settles a half-done swap under its lock
    plan = [f"will drop {target}, which holds:", *table_lines(target.url), *_sessions_plan(target, "and end its")]
    if not begin(c, target, "DROP", plan, yes=yes, no_backup=no_backup, recover=False):
        return
    ended = admin.drop_database(target.url, report=_say)
    if ended is None:
        print(f"{target} does not exist; nothing to drop")
    elif ended:
        print(f"dropped {target}, ending {ended} session{'s' if ended > 1 else ''} that held it")
    else:
        print(f"dropped {target}")
    if target.prod:
        verify(target)


def _sessions_plan(target, headline: str) -> list[str]:
    """For a plan: `headline` with how many other client sessions hold the app database, then one
    line for each (the sessions a drop or kill ends)."""
    others = _other_sessions(target)
    return [
        f"{headline} {len(others)} other session(s)" + (":" if others else ""),
        *("  " + _session_line(row, query_width=PLAN_QUERY_WIDTH) for row in others),
    ]


def _other_sessions(target) -> list[dict]:
    from cruddur.errors import NoSuchDatabase
    from cruddur.postgres.sessions import list_sessions

    try:
        return [row for row in list_sessions(target.url) if row["db"] == target.dbname and not row["this_session"]]
    except NoSuchDatabase:
        return []


LOCK_TIMEOUT_HELP = f"seconds to wait for a lock another session holds before giving up (default {FILE_LOAD_LOCK_TIMEOUT:g})"


def _lock_timeout(value) -> float:
    return lock_timeout_flag(value, FILE_LOAD_LOCK_TIMEOUT)


@task(
    help={
        "prod": PROD_HELP,
        "yes": YES_HELP,
        "no_backup": NO_BACKUP_HELP,
        "file": "load this file instead of sql/schema.sql",
        "lock_timeout": LOCK_TIMEOUT_HELP,
    }
)
def schema_load(c, prod=False, yes=False, no_backup=False, file=None, lock_timeout=None):
    """Load sql/schema.sql in one transaction (replaces the tables; migrations then pending)."""
    from cruddur.postgres import migrations, roles

    # The load clears the migrations' record in its own transaction, whatever the file holds.
    target = _load_file(c, prod, yes, no_backup, file, lock_timeout, "schema.sql", "replace the tables of", migrations.load_schema)
    if target is None:
        return
    roles.regrant_database(target.url)  # the new tables have none of the app roles' privileges
    config = settings()
    pending = [row for row in migrations.status(target.url, config.sql_dir / "migrations") if row.state == migrations.PENDING]
    if pending:
        print(f"{len(pending)} migration(s) pending; next: inv db.migrate{' --prod' if prod else ''}")


@task(
    help={
        "prod": PROD_HELP,
        "yes": YES_HELP,
        "no_backup": NO_BACKUP_HELP,
        "file": "load this file instead of sql/seed.sql",
        "lock_timeout": LOCK_TIMEOUT_HELP,
    }
)
def seed(c, prod=False, yes=False, no_backup=False, file=None, lock_timeout=None):
    """Load sql/seed.sql in one transaction."""
    _load_file(c, prod, yes, no_backup, file, lock_timeout, "seed.sql", "load seed data into")


def _load_file(c, prod: bool, yes: bool, no_backup: bool, file: str | None, lock_timeout, default: str, action: str, load=None):
    """The target once the file loaded, or None in a dry run. `load(url, path, label,
    lock_timeout)`: how the file is run (default: admin.run_sql_file)."""
    from cruddur.postgres import admin

    wait = _lock_timeout(lock_timeout)
    target = app_database(prod, dry=is_dry(c))
    path, label = _sql_file(file, default)
    plan = [f"will load {label} into {target} ({action} it); its tables now:", *table_lines(target.url)]
    if not begin(c, target, action, plan, yes=yes, no_backup=no_backup):
        return None
    (load or admin.run_sql_file)(target.url, path, label, lock_timeout=wait)
    print(f"loaded {label} into {target}")
    if target.prod:
        verify(target)
    return target


@task(help={"prod": PROD_HELP, "yes": YES_HELP, "no_backup": NO_BACKUP_HELP})
def setup(c, prod=False, yes=False, no_backup=False):
    """Reset the app database: schema, migrations, seed."""
    from cruddur.postgres import admin, migrations

    started = time.monotonic()  # "ready in" counts the whole task, a server start included
    target = app_database(prod, recover=False, dry=is_dry(c))  # the rebuild finishes an interrupted swap itself
    config = settings()
    schema, seed = _sql_file(None, "schema.sql"), _sql_file(None, "seed.sql")
    pending = len(list((config.sql_dir / "migrations").glob("*.sql")))
    plan = [
        f"will replace {target} with a fresh build of sql/schema.sql, {pending} file(s) of sql/migrations/, sql/seed.sql;",
        "its tables now:",
        *table_lines(target.url),
    ]
    if not begin(c, target, "DROP and recreate", plan, yes=yes, no_backup=no_backup, recover=False):
        return
    print(f"setting up {target}")
    # A failure says itself what became of the database (left as it was, or swapped in all the same).
    existed = admin.replace_database(
        target.url,
        lambda scratch: migrations.build(scratch, schema, config.sql_dir / "migrations", seed, label_root=config.sql_dir.parent),
    )
    print("  built a fresh database from sql/schema.sql, sql/migrations/, sql/seed.sql")
    print(f"  {'replaced' if existed else 'created'} {target.dbname}")
    if target.prod:
        verify(target)
    print(f"ready in {time.monotonic() - started:.2f}s")


@task(
    help={
        "prod": PROD_HELP,
        "all": "include the server's own processes (checkpointer, autovacuum, ...)",
        "tree": "show who blocks whom: root blockers first, each waiting session under the one it waits for",
        "json": JSON_HELP,
        "watch": "refresh until Ctrl-C",
        "interval": f"seconds between refreshes with --watch (default {SESSIONS_REFRESH_SECONDS:g})",
    }
)
def sessions(c, prod=False, all=False, tree=False, json_=False, watch=False, interval=None):
    """Show who is connected: state, waits, blockers (--tree: who blocks whom)."""
    interval = number(interval, "--interval", default=SESSIONS_REFRESH_SECONDS, minimum=0.1)
    from cruddur.postgres.sessions import list_sessions

    url = app_database(prod).url
    if tree:
        from cruddur.postgres import blocking

        if json_:
            print_json([node.as_json() for node in blocking.tree(list_sessions(url))])
            return
        _show_or_watch(lambda width: _blocking_tree(list_sessions(url), width, prod), watch, interval)
        return
    if json_:
        print_json(list_sessions(url, all))
        return
    _show_or_watch(lambda width: _sessions_table(list_sessions(url, all), width, with_type=all), watch, interval)


def _show_or_watch(render, watch: bool, interval: float) -> None:
    """Show render(width) once, or with watch again every `interval` seconds until Ctrl-C."""
    if not watch:
        show(render(console().width))
        return
    from rich.live import Live

    screen = console()
    with Live(render(screen.width), console=screen, auto_refresh=False) as live:
        print(f"refreshing every {interval:g}s; Ctrl-C to stop", file=sys.stderr, flush=True)
        try:
            while True:
                time.sleep(interval)
                live.update(render(screen.width), refresh=True)
        except KeyboardInterrupt:
            pass  # Ctrl-C is how a watch ends


def _blocking_tree(rows: list[dict], width: int, prod: bool):
    """The blocking tree: a root blocker per branch, its waiters nested under it, one line each;
    the command it suggests acts on the same database (`prod`)."""
    from rich.console import Group
    from rich.text import Text
    from rich.tree import Tree

    from cruddur.postgres import blocking

    roots = blocking.tree(rows)
    if not roots:
        return Text(f"no session waits for another ({len(rows)} client session(s))")
    shown = Tree(Text("root blockers first; each waiting session under the one it waits for"), guide_style="dim")
    waiting = {row["pid"] for row in rows if row["blocked_by"]}

    def add(branch, node, depth: int) -> None:
        # A label never wraps: the query, last on the line, is cut where the width ends.
        label = Text(_node_line(node), no_wrap=True, overflow="ellipsis", style="bold red" if depth == 0 else None)
        child = branch.add(label)
        for waiter in node.waiters:
            add(child, waiter, depth + 1)

    for root in roots:
        add(shown, root, 0)
    summary = (
        f"{len(roots)} root blocker(s), {len(waiting)} waiting session(s); inv db.kill --root ends the roots;"
        " --json shows every field and the whole query"
    )
    return Group(shown, Text(for_target(summary, prod)))


def _node_line(node) -> str:
    """One session of the tree on one line (see _session_line), with the other sessions it also
    waits for, and whether it waits in a cycle."""
    if node.session is None:
        return f"{node.pid} (not shown in pg_stat_activity: a server process, or it has ended)"
    return _session_line(node.session, node)


# A plan names each session on one line: its query is cut to this many characters.
PLAN_QUERY_WIDTH = 60


def _session_line(row: dict, node=None, query_width: int | None = None) -> str:
    """One session on one line: its wait first, then its state and times, who it is, and its
    query (cut to `query_width`; the tree's rich text is cut where the terminal ends instead).
    For the tree and for every plan that names sessions."""
    parts = [f"{row['pid']}{' *' if row['this_session'] else ''}"]
    if row["waited_seconds"] is not None:
        parts.append(f"waiting {duration(row['waited_seconds'])} on {row['wait_event'] or '?'}")
    if node is not None and node.also_waits_for:
        parts.append("also waits for " + ", ".join(str(pid) for pid in node.also_waits_for))
    if node is not None and node.cycle:
        parts.append("waits in a cycle (shown above)")
    state = row["state"] or "?"
    if row["idle_in_transaction_seconds"] is not None:
        state += f" for {duration(row['idle_in_transaction_seconds'])}"
    parts.append(state)
    if row["transaction_seconds"] is not None:
        parts.append(f"transaction {duration(row['transaction_seconds'])}")
    parts.append(f"{row['app'] or '?'} ({row['user'] or '?'}@{row['db'] or '?'})")
    parts.append(on_one_line(row["query"], query_width))
    return printable(" | ".join(parts))  # other clients' text: control characters shown escaped


# The table's columns, most wanted first (the widest each may grow). Those that fit the width
# are shown; the query takes what the others leave. A wait event's name is never cut (the
# longest are under 40 characters).
_SESSION_COLUMNS = [
    Column("pid", 9),
    Column("state", 19),
    Column("wait"),
    Column("blocked by", 16, style="bold red"),
    Column("query", flexible=True),
    Column("application", 20),
    Column("in state", 8),
    Column("user", 12),
    Column("db", 16),
    Column("client", 15),
    Column("query time", 10),
]
# With --all the server's own processes are listed, and their type says what each one is.
_TYPE_COLUMN = Column("type")


def _session_cells(row: dict) -> dict[str, str]:
    cells = {
        "pid": f"{row['pid']}{' *' if row['this_session'] else ''}",
        "state": (row["state"] or "").replace("idle in transaction", "idle in tx"),
        "wait": row["wait_event"],
        "blocked by": ", ".join(str(pid) for pid in row["blocked_by"] or []),
        "query": on_one_line(row["query"]),
        "application": row["app"],
        "in state": duration(row["state_seconds"]),
        "user": row["user"],
        "db": row["db"],
        "client": row["client_addr"] or ("local" if row["backend_type"] == "client backend" else ""),
        "query time": duration(row["query_seconds"]),
        "type": row["backend_type"],
    }
    # Other clients' text: control characters shown escaped.
    return {header: printable(text) for header, text in cells.items()}


def _sessions_table(rows: list[dict], width: int, with_type: bool = False):
    from rich.console import Group
    from rich.text import Text

    columns = [*_SESSION_COLUMNS[:2], _TYPE_COLUMN, *_SESSION_COLUMNS[2:]] if with_type else _SESSION_COLUMNS
    table = fitted_table([_session_cells(row) for row in rows], columns, width)
    summary = f"{len(rows)} session(s); * marks this one; --json shows every field and the whole query"
    return Group(table, Text(summary))


@task(
    help={
        "prod": PROD_HELP,
        "yes": YES_HELP,
        "root": "end only the root blockers (sessions that block others and wait on no one), listed first",
        "pid": "end only this session (its pid, from inv db.sessions)",
        "dry_run": "list the sessions it would end and end nothing (as inv --dry does)",
    }
)
def kill(c, prod=False, yes=False, root=False, pid=None, dry_run=False):
    """End the other client sessions on the app database (--root: only the root blockers)."""
    if root and pid is not None:
        raise UsageError("--root and --pid choose different sessions; give one of them")
    dry_run = is_dry(c, dry_run)
    if root:
        _kill_roots(c, prod, yes, dry_run)
        return
    if pid is not None:
        _kill_one(c, prod, yes, number(pid, "--pid", default=None, minimum=1, integer=True), dry_run)
        return
    from cruddur.postgres import admin

    target = app_database(prod, dry=dry_run)
    plan = _sessions_plan(target, f"will end, on {target}, its")
    if not begin(c, target, "end every other session on", plan, yes=yes, backup=False, dry_run=dry_run):
        return
    results = admin.terminate_other_sessions(target.url)
    if not results:
        print(f"no other sessions on {target}")
    for pid, ended in results:
        print(f"ended session {pid}" if ended else f"could not end session {pid}: it belongs to another role")
    if target.prod:
        print(f"now {len(_other_sessions(target))} other session(s) hold {target.dbname}")
    if any(not ended for _, ended in results):
        raise Exit(code=1)


def _kill_roots(c, prod: bool, yes: bool, dry_run: bool) -> None:
    """Plan (the root blockers, listed), confirm on prod, end each that is still a root, say
    what became of each."""
    from cruddur.postgres import blocking
    from cruddur.postgres.sessions import list_sessions

    target = app_database(prod, dry=dry_run)
    roots = blocking.roots_on(blocking.tree(list_sessions(target.url)), target.dbname)
    if not roots:
        nothing_to_do(c, f"no session blocks another on {target}; nothing to do", dry_run=dry_run)
        return
    print(f"{len(roots)} root blocker(s) on {target}:")
    for node in roots:
        print(f"  blocks {_waiter_count(node)}: {_node_line(node)}")
    if not confirm(c, target, f"end {len(roots)} root blocker session(s) on", yes, dry_run):
        return
    results = blocking.end_roots(target.url, [node.pid for node in roots])
    _report_ended(results)


def _kill_one(c, prod: bool, yes: bool, pid: int, dry_run: bool) -> None:
    """Plan (the session, shown), confirm on prod, end it, say what became of it."""
    from cruddur.postgres import blocking
    from cruddur.postgres.sessions import session

    target = app_database(prod, dry=dry_run)
    plan = [
        f"will end session {pid} on the server of {target}:",
        "  " + _session_line(session(target.url, pid), query_width=PLAN_QUERY_WIDTH),
    ]
    if not begin(c, target, f"end session {pid} on the server of", plan, yes=yes, backup=False, dry_run=dry_run):
        return
    _report_ended([blocking.end_session(target.url, pid)])


def _report_ended(results) -> None:
    for result in results:
        print(f"ended session {result.pid}" if result.ended else f"did not end session {result.pid}: {result.reason}")
    if any(result.kept for result in results):
        raise Exit(code=1)


def _waiter_count(node) -> str:
    return f"{len(node.behind())} session(s)"


@task(help={"prod": PROD_HELP, "timeout": f"seconds to wait before giving up (default {SERVER_READY_TIMEOUT:g})"})
def wait(c, prod=False, timeout=None):
    """Wait until the database server accepts connections."""
    from cruddur.postgres import admin

    timeout = number(timeout, "--timeout", default=SERVER_READY_TIMEOUT)
    target = app_database(prod, recover=False)
    took = admin.wait_until_ready(target.url, timeout=timeout)
    print(f"{target} accepts connections (waited {took:.1f}s)")
