"""Drift: the app database's schema against what sql/schema.sql plus its applied migrations build."""

from __future__ import annotations

from cruddur.errors import CheckFailed

from ._cli import JSON_HELP, PROD_HELP, app_database, print_json, task


@task(help={"prod": PROD_HELP, "json": JSON_HELP})
def drift(c, prod=False, json_=False):
    """Compare the schema with schema.sql + applied migrations."""
    from . import migrations

    target = app_database(prod)
    found = migrations.check_drift(target)
    if json_:
        print_json(found)
    else:
        migrations.print_drift(target, found)
    if found.differences:
        raise CheckFailed(f"{len(found.differences)} difference(s) between {target} and sql/schema.sql plus its applied migrations")
