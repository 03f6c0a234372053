"""Cruddur's Postgres and AWS library.

The Flask backend imports the client from here; the `inv` tasks are a thin layer over it.
Nothing in this package imports invoke or rich.
"""

import logging

# Without a handler anywhere, Python prints warnings to stderr itself (logging.lastResort): a
# library leaves that choice to the application. Every module of the package logs under `cruddur`.
logging.getLogger("cruddur").addHandler(logging.NullHandler())
