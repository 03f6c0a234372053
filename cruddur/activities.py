"""Activities: create one (the CreateActivity service) and read the home feed (HomeActivities).

Both return what the Flask backend sends as JSON; Postgres builds it, timestamps in ISO 8601.
"""

from __future__ import annotations

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


def _blank(value: str | None) -> bool:
    return value is None or not value.strip()


def validate_activity(handle: str | None, message: str | None, ttl: str | None) -> list[str]:
    """The error codes for this input, in the order ttl, handle, message; [] when valid."""
    errors = []
    if ttl not in TTLS:
        errors.append("ttl_blank")
    if _blank(handle):
        errors.append("user_handle_blank")
    if _blank(message):
        errors.append("message_blank")
    elif len(message) > MAX_MESSAGE_CHARS:
        errors.append("message_exceed_max_chars")
    return errors


def create_activity(db: Database, handle: str | None, message: str | None, ttl: str | None) -> dict[str, Any]:
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
    the caller asks otherwise; None returns all of them."""
    if limit is not None and limit < 0:
        raise ValueError("limit must be zero or more")
    return db.query_array_json(db.template("activities", "home"), {"limit": limit})
