"""The Cognito user pool: list its users, match them to the users table."""

import sys

from cruddur.formats import moment

from ._cli import JSON_HELP, PROD_HELP, app_database, console, print_json, printable, settings, show, task
from ._protocol import DRY_RUN_HELP, NO_BACKUP_HELP, begin, dry_run_shown, is_dry, nothing_to_do


def _pool_users():
    from cruddur.aws import clients, cognito

    pool = cognito.pool_id(settings())
    return pool, cognito.list_users(clients.client("cognito-idp"), pool)


@task(help={"json_": JSON_HELP})
def users(c, json_=False):
    """List every user of the AWS_COGNITO_USER_POOL_ID pool."""
    pool, found = _pool_users()
    if json_:
        print_json(found)
        return
    screen = console()
    table = _users_table(pool, found)
    # The table's natural width, measured as if the terminal had no edge.
    if screen.measure(table, options=screen.options.update_width(10**4)).maximum <= screen.width:
        show(table)
    else:
        show(_users_listing(pool, found))  # too narrow for the table: the sub on a line of its own, never cut


_USER_COLUMNS = ("user name", "sub", "preferred_username", "email", "status", "created")


def _user_cells(user) -> tuple[str, ...]:
    created = moment(user.created)
    cells = (user.username, user.sub, user.preferred_username or "-", user.email or "", user.status, created)
    return tuple(printable(cell) for cell in cells)


def _users_table(pool: str, found):
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(f"{pool}: {len(found)} users"))
    for column in _USER_COLUMNS:
        table.add_column(column, no_wrap=True)
    for user in found:
        table.add_row(*(Text(cell) for cell in _user_cells(user)))
    return table


def _users_listing(pool: str, found):
    """One block per user: name, status and creation on the first line, then one field per line."""
    from rich.text import Text

    lines = [f"{pool}: {len(found)} users"]
    for user in found:
        name, sub, preferred, email, status, created = _user_cells(user)
        lines += ["", f"{name}  {status}  {created}", f"  sub                 {sub}"]
        lines += [f"  preferred_username  {preferred}", f"  email               {email}"]
    return Text("\n".join(lines), no_wrap=True, overflow="ellipsis")


@task(
    help={
        "prod": PROD_HELP,
        "dry_run": DRY_RUN_HELP,
        "yes": "with --prod: skip typing the database name",
        "no_backup": NO_BACKUP_HELP,
        "json_": JSON_HELP,
    }
)
def sync(c, prod=False, dry_run=False, yes=False, no_backup=False, json_=False):
    """Set users.cognito_user_id from Cognito, matching handle to preferred_username."""
    from rich.text import Text

    from cruddur.aws import cognito

    dry_run = is_dry(c, dry_run)
    where = app_database(prod, dry=dry_run)
    pool, found = _pool_users()
    # On production the plan comes first (read only): shown before the question, which is about
    # it, and the question is asked only when there is something to change.
    plan = cognito.sync(where.url, found, dry_run=dry_run or where.prod)
    if where.prod and not plan.nothing_to_do and not dry_run:
        # With --json the plan goes to stderr: stdout stays one JSON document.
        shown = console(stderr=json_)
        _show_plan(plan, pool, str(where), shown)
        shown.print(Text(f"will update {len(plan.updated)} row(s) on the {where}"))
        stream = sys.stderr if json_ else sys.stdout
        begin(c, where, "set cognito_user_id from Cognito in", [], yes=yes, no_backup=no_backup, stream=stream)
        applied = cognito.sync(where.url, found, confirmed=plan.updated)
        left = cognito.sync(where.url, found, dry_run=True)  # read back: what still differs
        print(f"now {len(left.updated)} row(s) differ from Cognito on the {where}", file=stream)
        if not json_:
            console().print(Text(f"updated {len(applied.updated)} row(s) on the {where}"))
            return
        plan = applied
    if json_:
        print_json(plan)
        return
    out = console()
    _show_plan(plan, pool, str(where), out)
    if plan.nothing_to_do:
        nothing_to_do(c, "nothing to do", dry_run=dry_run)
    else:
        dry_run_shown(c, [], dry_run=dry_run)


def _show_plan(plan, pool: str, where: str, out) -> None:
    """The plan's table (names and handles are other people's text: shown through printable())
    and its counts."""
    from rich.table import Table
    from rich.text import Text

    rows = [
        *(("updated", u.handle, f"{u.old} -> {u.new}") for u in plan.updated),
        *(
            ("handle held by another Cognito user", h.handle, f"{h.cognito_user_id} holds it, not {h.sub}; not applied")
            for h in plan.handle_held
        ),
        *(("sub used by another row", s.handle, f"{s.sub} is already {s.held_by}'s; not applied") for s in plan.sub_in_use),
        *(("several Cognito users", u.preferred_username, f"{u.username} ({u.sub}); not applied") for u in plan.ambiguous),
        *(("Cognito user, no row", u.preferred_username, f"{u.username} ({u.sub})") for u in plan.no_row),
        *(("no preferred_username", "-", f"{u.username} ({u.sub}); skipped") for u in plan.no_preferred_username),
        *(
            ("row, no Cognito user", r.handle, f"{r.cognito_user_id}{' (placeholder: not signed up yet)' if r.placeholder else ''}")
            for r in plan.no_cognito_user
        ),
    ]
    if rows:
        table = Table(title=Text(f"{pool} -> public.users on the {where}"))
        for column in ("", "handle", "detail"):
            table.add_column(column)
        for row in rows:
            table.add_row(*(Text(printable(cell)) for cell in row))
        show(table, out)
    counts = {
        "updated": len(plan.updated),
        "already right": len(plan.already_right),
        "Cognito users with no row": len(plan.no_row),
        "rows with no Cognito user": len(plan.no_cognito_user),
        "without preferred_username (skipped)": len(plan.no_preferred_username),
        "handle held by another Cognito user (not applied)": len(plan.handle_held),
        "sub used by another row (not applied)": len(plan.sub_in_use),
        "several Cognito users for one handle (not applied)": len(plan.ambiguous),
    }
    for label, count in counts.items():
        out.print(Text(f"  {count:>5}  {label}"))
