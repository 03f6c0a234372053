"""The one way the library waits for something to come true: try, pause, try again, until a deadline."""

from __future__ import annotations

import time


class Deadline:
    """A moment `seconds` from now, on the monotonic clock, that a loop must not wait past.

    deadline = Deadline(timeout)
    while not ready():
        if not deadline.pause(interval):
            raise SomeError(f"gave up after {deadline.elapsed():.1f}s")
    """

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.started = time.monotonic()
        self.at = self.started + seconds

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def left(self) -> float:
        """Seconds until the deadline; 0 once it has passed."""
        return max(0.0, self.at - time.monotonic())

    def passed(self) -> bool:
        return time.monotonic() >= self.at

    def pause(self, interval: float) -> bool:
        """Sleep `interval` seconds (less when the deadline comes sooner) and return True; return
        False at once when the deadline has passed: the caller's cue to give up."""
        left = self.left()
        if left <= 0:
            return False
        time.sleep(min(interval, left))
        return True
