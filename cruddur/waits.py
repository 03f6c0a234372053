"""What the library says while it waits for someone else: records of the `cruddur.waits` logger.

The library never prints. The tasks show these records on stderr as they come; an application
sees them only through handlers of its own (the `cruddur` logger carries a NullHandler)."""

from __future__ import annotations

import logging

waits_log = logging.getLogger("cruddur.waits")
