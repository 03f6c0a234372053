"""Local and production database chores."""

from ._cli import task


@task(help={"prod": "use PROD_CONNECTION_URL instead of CONNECTION_URL"})
def up(c, prod=False):
    """Start the embedded local PostgreSQL (stub)."""
