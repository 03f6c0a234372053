"""Activities through the Postgres client, as the Flask backend sees them (part of the db collection)."""

from __future__ import annotations

from contextlib import contextmanager

from cruddur.errors import UsageError
from cruddur.formats import moment
from cruddur.timeouts import CONNECT_TIMEOUT

from ._cli import JSON_HELP, PROD_HELP, YES_HELP, app_database, console, guard_prod, number, print_json, printable, show, task

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


@contextmanager
def _client(target, prod: bool):
    """The backend's client on the app database, with its lock and statement time bounds; a lock
    wait past the bound says where to see who holds it."""
    from cruddur.errors import DatabaseError, LockTimeout
    from cruddur.postgres.client import Database

    db = Database(target.url, min_size=1, max_size=1).open(timeout=CONNECT_TIMEOUT)
    try:
        yield db
    except LockTimeout as e:
        raise DatabaseError(f"{e} (inv db.sessions{' --prod' if prod else ''} shows who)") from None
    finally:
        db.close()


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
    from cruddur.activities import create_activity as create

    target = app_database(prod)
    guard_prod(target, "add an activity to", yes)
    with _client(target, prod) as db:
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
    with _client(target, prod) as db:
        feed = home_activities(db, limit)
        total = count_activities(db) if not json_ else len(feed)
    if json_:
        print_json(feed)
        return
    show(_feed_table(feed, total, str(target), console().width))


# The feed's columns, most wanted first; the message takes what they leave, wrapped at word
# boundaries, and is never narrower than this (less wanted columns go first).
_MESSAGE_MIN = 32
_GAP = 3  # between two columns: padding, separator, padding


def _feed_table(feed: list[dict], total: int, where: str, width: int):
    from rich import box
    from rich.table import Table
    from rich.text import Text

    rows = [
        {
            "created": moment(activity["created_at"]),
            "author": printable(f"@{activity['handle']}" if activity["handle"] else "(no user)"),
            "message": printable(activity["message"]),  # not markup: users write [brackets] too
            "likes": str(activity["likes_count"]),
            "expires": moment(activity["expires_at"]),
        }
        for activity in feed
    ]
    widest = {"author": 20}
    natural = {
        header: min(max(len(header), *(len(row[header]) for row in rows)), widest.get(header, 10**6))
        for header in ("created", "author", "likes", "expires")
    }
    shown = ["created", "author", "message", "likes", "expires"]
    for dropped in ("expires", "likes"):
        others = sum(natural[header] + _GAP for header in shown if header != "message")
        if width - others >= _MESSAGE_MIN:
            break
        shown.remove(dropped)
    table = Table(
        title=Text(f"home feed: {where}"),
        caption=f"showing {len(feed)} of {total} activities; --json shows every field" + ("" if "expires" in shown else " (expiry too)"),
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
    )
    for header in shown:
        if header == "message":
            # Wrapped at word boundaries; only a word longer than the column is split.
            table.add_column(header, ratio=1, min_width=_MESSAGE_MIN, overflow="fold")
        else:
            table.add_column(
                header, no_wrap=True, max_width=widest.get(header), overflow="ellipsis", justify="right" if header == "likes" else "left"
            )
    for row in rows:
        table.add_row(*(Text(row[header]) for header in shown))
    return table
