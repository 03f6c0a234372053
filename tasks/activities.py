"""Activities through the Postgres client, as the Flask backend sees them (part of the db collection)."""

from __future__ import annotations

from contextlib import closing

from cruddur.errors import UsageError
from cruddur.formats import moment
from cruddur.timeouts import CONNECT_TIMEOUT

from ._cli import JSON_HELP, PROD_HELP, YES_HELP, app_database, number, print_json, printable, show, task
from ._protocol import begin, is_dry

# What each refusal means for someone at the command line.
REASONS = {
    "ttl_blank": "--ttl must be one of {ttls}; not {ttl}",
    "user_handle_blank": "--handle is blank",
    "user_handle_invalid_characters": "--handle holds a NUL byte or bytes that are not UTF-8",
    "message_blank": "--message is blank",
    "message_invalid_characters": "--message holds a NUL byte or bytes that are not UTF-8",
    "message_exceed_max_chars": "--message is longer than {max} characters",
    "user_not_found": "no user has the handle {handle}",
}


def _open(target):
    from cruddur.postgres.client import Database

    return Database(target.url, min_size=1, max_size=1).open(timeout=CONNECT_TIMEOUT)


def _refusal(errors: list[str], handle: str, ttl: str) -> str:
    from cruddur.activities import MAX_MESSAGE_CHARS, TTLS

    facts = {"ttls": ", ".join(TTLS), "max": MAX_MESSAGE_CHARS, "handle": repr(printable(handle)), "ttl": repr(printable(ttl))}
    return "; ".join(f"{code} ({REASONS.get(code, code).format(**facts)})" for code in errors)


@task(
    help={
        "handle": "the author's user handle (must exist in users)",
        "message": "the activity's text, 1 to 280 characters",
        "ttl": "how long it lives: 30-days, 7-days, 3-days, 1-day, 12-hours, 3-hours or 1-hour",
        "json": "print the result as JSON ({errors, data}) instead of a panel",
        "prod": PROD_HELP,
        "yes": YES_HELP,
    }
)
def create_activity(c, handle="", message="", ttl="7-days", json_=False, prod=False, yes=False):
    """Create an activity the way the backend does.

    A refusal exits 1 with its error codes and stores nothing.
    """
    import sys

    from cruddur.activities import create_activity as create

    target = app_database(prod, dry=is_dry(c))
    plan = [f"will add an activity by @{printable(handle)} ({printable(ttl)}) to {target}: {printable(message)!r}"]
    # With --json the plan goes to stderr: stdout stays one JSON document.
    if not begin(c, target, "add an activity to", plan, yes=yes, backup=False, stream=sys.stderr if json_ else None):
        return
    db = _open(target)
    with closing(db):
        result = create(db, handle, message, ttl)
    if json_:
        print_json(result)
    if result["errors"]:
        raise UsageError(f"activity not created: {_refusal(result['errors'], handle, ttl)}")
    if json_:
        return
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    activity = result["data"]
    fields = Table.grid(padding=(0, 2))
    fields.add_column(style="bold")
    fields.add_column()
    for label, value in [
        ("uuid", activity["uuid"]),
        ("author", f"{activity['display_name']} (@{activity['handle']})"),
        ("message", activity["message"]),
        ("created", moment(activity["created_at"])),
        ("expires", moment(activity["expires_at"])),
        ("database", str(target)),
    ]:
        fields.add_row(label, Text(printable(value)))  # Text: a message's [brackets] are not markup
    show(Panel(fields, title="activity created", expand=False))


@task(
    help={
        "limit": "show at most this many activities, newest first (default 100; 0 for all of them)",
        "json": JSON_HELP,
        "prod": PROD_HELP,
    }
)
def activities(c, limit=None, json_=False, prod=False):
    """Show the home feed, newest first."""
    from cruddur.activities import HOME_FEED_LIMIT, count_activities, home_activities

    limit = number(limit, "--limit", default=HOME_FEED_LIMIT, integer=True)
    target = app_database(prod)
    db = _open(target)
    with closing(db):
        feed = home_activities(db, limit)
        total = count_activities(db) if not json_ else len(feed)
    if json_:
        print_json(feed)
        return
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title=f"home feed: {target}",
        caption=f"showing {len(feed)} of {total} activities; --json shows every field",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("created", no_wrap=True)
    table.add_column("author", no_wrap=True, max_width=20)
    table.add_column("message", ratio=1, overflow="fold")
    table.add_column("likes", justify="right")
    table.add_column("expires", no_wrap=True)
    for activity in feed:
        author = f"@{activity['handle']}" if activity["handle"] else "(no user)"
        table.add_row(
            moment(activity["created_at"]),
            Text(printable(author)),
            Text(printable(activity["message"])),  # not markup: users write [brackets] too
            str(activity["likes_count"]),
            moment(activity["expires_at"]),
        )
    show(table)
