"""How times and sizes read for people: one format each, everywhere."""

from __future__ import annotations

from datetime import UTC, datetime


def moment(value: datetime | str | None) -> str:
    """A time to the minute, in UTC with the zone shown: '2026-11-25 22:10 UTC'; '' for none.

    Takes a datetime or an ISO 8601 text (as Postgres's JSON gives it); a time with no zone is
    taken to be UTC already."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def byte_size(size: float) -> str:
    """A size for people: '512 bytes', '1.5 kB', '12.3 MB' (units of 1024)."""
    for unit in ("bytes", "kB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return ""
