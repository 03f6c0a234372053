"""Activities through the Postgres client, as the Flask backend sees them (part of the db collection)."""

from __future__ import annotations

import logging
from contextlib import closing

from invoke.exceptions import Exit

from ._cli import JSON_HELP, PROD_HELP, console, number, print_json, settings, task

# What each refusal means for someone at the command line.
REASONS = {
    "ttl_blank": "--ttl must be one of {ttls}",
    "user_handle_blank": "--handle is blank",
    "message_blank": "--message is blank",
    "message_exceed_max_chars": "--message is longer than {max} characters",
    "user_not_found": "no user has the handle {handle!r}",
}


def _open(prod: bool):
    from cruddur.postgres.client import Database
    from cruddur.postgres.connect import CONNECT_TIMEOUT
    from cruddur.postgres.target import resolve

    # The pool logs each failed attempt; the one-line error below says why, once.
    logging.getLogger("psycopg.pool").addHandler(logging.NullHandler())
    config = settings()
    target = resolve(config, prod)
    return Database(target.url, sql_dir=config.sql_dir, min_size=1, max_size=1).open(timeout=CONNECT_TIMEOUT), target


def _when(iso: str | None) -> str:
    # 2026-11-25T22:10:32.09+00:00 -> 11-25 22:10 (the table must fit 80 columns)
    return iso[5:16].replace("T", " ") if iso else ""


def _refusal(errors: list[str], handle: str) -> str:
    from cruddur.activities import MAX_MESSAGE_CHARS, TTLS

    facts = {"ttls": ", ".join(TTLS), "max": MAX_MESSAGE_CHARS, "handle": handle}
    return "; ".join(f"{code} ({REASONS.get(code, code).format(**facts)})" for code in errors)


@task(
    help={
        "handle": "the author's user handle (must exist in users)",
        "message": "the activity's text, 1 to 280 characters",
        "ttl": "how long it lives: 30-days, 7-days, 3-days, 1-day, 12-hours, 3-hours or 1-hour",
        "json": "print the result as JSON ({errors, data}) instead of a panel",
        "prod": PROD_HELP,
    }
)
def create_activity(c, handle="", message="", ttl="7-days", json_=False, prod=False):
    """Create an activity the way the backend does.

    A refusal exits 1 with its error codes and stores nothing.
    """
    from cruddur.activities import create_activity as create

    db, target = _open(prod)
    with closing(db):
        result = create(db, handle, message, ttl)
    if json_:
        print_json(result)
    if result["errors"]:
        raise Exit(f"error: activity not created: {_refusal(result['errors'], handle)}", code=1)
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
        ("created", activity["created_at"]),
        ("expires", activity["expires_at"]),
        ("database", str(target)),
    ]:
        fields.add_row(label, Text(value))  # Text: a message's [brackets] are not markup
    console().print(Panel(fields, title="activity created", expand=False))


@task(
    help={
        "limit": "show at most this many activities, newest first (default 100; 0 for all)",
        "json": JSON_HELP,
        "prod": PROD_HELP,
    }
)
def activities(c, limit=None, json_=False, prod=False):
    """Show the home feed, newest first."""
    from cruddur.activities import HOME_FEED_LIMIT, home_activities

    limit = number(limit, "--limit", default=HOME_FEED_LIMIT, integer=True)
    db, target = _open(prod)
    with closing(db):
        feed = home_activities(db, limit or None)
    if json_:
        print_json(feed)
        return
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title=f"home feed: {target}",
        caption=f"{len(feed)} activities; --json shows every field",
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
            _when(activity["created_at"]),
            Text(author),
            Text(activity["message"]),  # not markup: users write [brackets] too
            str(activity["likes_count"]),
            _when(activity["expires_at"]),
        )
    console().print(table)
