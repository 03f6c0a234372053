"""How long work says how far it has got: the library calls report(step, done_bytes) (either may
be None) and the caller decides how to show it (the tasks: a progress line on a terminal)."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[..., None]


def no_progress(step: str | None = None, done_bytes: int | None = None) -> None:
    """The report of a caller that shows nothing."""
