"""Activities: create one (the CreateActivity service) and read the home feed (HomeActivities).

Both return what the Flask backend sends as JSON; Postgres builds it, timestamps in ISO 8601.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from .postgres.client import Database

MAX_MESSAGE_CHARS = 280
HOME_FEED_LIMIT = 100

TTLS: dict[str, timedelta] = {
    "30-days": timedelta(days=30),
    "7-days": timedelta(days=7),
    "3-days": timedelta(days=3),
    "1-day": timedelta(days=1),
    "12-hours": timedelta(hours=12),
    "3-hours": timedelta(hours=3),
    "1-hour": timedelta(hours=1),
}


# A NUL byte (Postgres text cannot hold it) or a lone surrogate (no UTF-8 for it).
_NOT_STORABLE = re.compile("[\x00\ud800-\udfff]")


def _text_error(value: object, field: str) -> str | None:
    """The error code for a value that is not text Postgres can store, else None.

    The backend passes whatever the request's JSON held: numbers, lists, None, and strings with
    a NUL byte (Postgres text cannot hold it) or a lone surrogate (not encodable as UTF-8)."""
    if value is None:
        return f"{field}_blank"
    if not isinstance(value, str):
        return f"{field}_not_text"
    if _NOT_STORABLE.search(value):
        return f"{field}_invalid_characters"
    if not value.strip():
        return f"{field}_blank"
    return None


def validate_activity(handle: object, message: object, ttl: object) -> list[str]:
    """The error codes for this input, in the order ttl, handle, message; [] when valid.

    Any value is accepted and judged, never raised on: see the README for the codes."""
    errors = []
    if not isinstance(ttl, str) or ttl not in TTLS:
        errors.append("ttl_blank")
    handle_error = _text_error(handle, "user_handle")
    if handle_error:
        errors.append(handle_error)
    message_error = _text_error(message, "message")
    if message_error:
        errors.append(message_error)
    elif len(message) > MAX_MESSAGE_CHARS:
        errors.append("message_exceed_max_chars")
    return errors


def create_activity(db: Database, handle: object, message: object, ttl: object) -> dict[str, Any]:
    """{'errors': None, 'data': the new activity} or {'errors': [codes], 'data': {'handle', 'message'}}.

    The activity is inserted and returned joined to its author in one statement; on any error
    nothing is stored. Database failures raise DatabaseError subclasses.
    """
    errors = validate_activity(handle, message, ttl)
    if not errors:
        created = db.query_commit(
            db.template("activities", "create"),
            {"handle": handle, "message": message, "ttl_seconds": TTLS[ttl].total_seconds()},
        )
        if created is not None:
            return {"errors": None, "data": created}
        errors = ["user_not_found"]
    return {"errors": errors, "data": {"handle": handle, "message": message}}


def get_activity(db: Database, uuid: str) -> dict[str, Any]:
    """One activity as create_activity returns it; {} when there is none."""
    return db.query_object_json(db.template("activities", "object"), {"uuid": uuid})


def home_activities(db: Database, limit: int | None = HOME_FEED_LIMIT) -> list[dict[str, Any]]:
    """The home feed, newest first: at most `limit` activities, HOME_FEED_LIMIT (100) unless
    the caller asks otherwise; 0 or None returns all of them (as `inv db.activities --limit 0`)."""
    if limit is not None and limit < 0:
        raise ValueError("limit must be zero or more")
    return db.query_array_json(db.template("activities", "home"), {"limit": limit or None})


def count_activities(db: Database) -> int:
    """How many activities the home feed holds in all (to say "showing 20 of 130")."""
    return db.query_value(db.template("activities", "count"))
