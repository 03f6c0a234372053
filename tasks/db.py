"""Local and production database chores."""

from ._cli import task


@task(help={"prod": "use PROD_CONNECTION_URL instead of CONNECTION_URL"})
def up(c, prod=False):
    """Start the embedded local PostgreSQL (stub)."""
from .activities import activities, create_activity  # noqa: E402,F401  (part of the db collection)
