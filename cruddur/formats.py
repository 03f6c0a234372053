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


def duration(seconds: float | None) -> str:
    """How long, for people: '0.25 ms', '713 ms', '12.3 s', '7 min'; '' for none."""
    if seconds is None:
        return ""
    if seconds < 1:
        milliseconds = seconds * 1000
        return f"{milliseconds:.2g} ms" if milliseconds < 10 else f"{milliseconds:.0f} ms"
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def byte_size(size: float) -> str:
    """A size for people: '512 bytes', '1.5 kB', '12.3 MB' (units of 1024)."""
    for unit in ("bytes", "kB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return ""
