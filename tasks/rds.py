"""The production RDS instance: create, inspect, wait for, stop, start, delete."""

import sys

# Light at the top (boto3 loads inside its functions); the flags' defaults come from it.
from cruddur.aws import rds as library

from ._cli import confirm_destructive, console, number, settings, task

DEFAULTS = library.CreateOptions()
IDENTIFIER = library.DEFAULT_IDENTIFIER
IDENTIFIER_HELP = f"the RDS instance (default {IDENTIFIER})"
TIMEOUT_HELP = f"(default {library.DEFAULT_WAIT_TIMEOUT})"


def _master_password(config) -> str:
    """RDS_MASTER_PASSWORD, else a hidden prompt (twice) on a terminal; never a flag."""
    from cruddur.errors import ConfigError

    if config.rds_master_password:
        return config.rds_master_password
    if not sys.stdin.isatty():
        raise ConfigError(
            "no master password: export RDS_MASTER_PASSWORD='a long secret' (or run on a terminal to be"
            " asked, or pass --manage-password to let RDS keep it in Secrets Manager)"
        )
    import getpass

    first = getpass.getpass("RDS master password (hidden): ")
    if getpass.getpass("Again: ") != first:
        raise ConfigError("the two passwords differ; nothing created")
    return first


def _print_url(instance, password=None) -> None:
    line = instance.export_line(password)
    if line:
        print(line)
    else:
        print(f"# {instance.identifier} has no endpoint yet; run inv rds.wait, then inv rds.url", file=sys.stderr)


def _wait(client, identifier, timeout):
    """Wait for `available`: a spinner with status and elapsed time on a terminal, status lines otherwise."""
    import time

    out = console(stderr=True)
    if not out.is_terminal:
        started = time.monotonic()
        seen = []

        def report(status):
            if not seen or seen[-1] != status:
                seen.append(status)
                print(f"{identifier}: {status} ({time.monotonic() - started:.0f}s)", file=sys.stderr)

        return library.wait_available(client, identifier, timeout, on_status=report)

    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=out, transient=True) as progress:
        waiting = progress.add_task(f"{identifier}: waiting for available")

        def report(status):
            progress.update(waiting, description=f"{identifier}: {status}, waiting for available")

        return library.wait_available(client, identifier, timeout, on_status=report)


@task(
    help={
        "identifier": IDENTIFIER_HELP,
        "instance_class": f"instance class (default {DEFAULTS.instance_class})",
        "engine_version": f"PostgreSQL version (default {DEFAULTS.engine_version})",
        "storage": f"allocated gp2 storage in GB (default {DEFAULTS.storage_gb})",
        "availability_zone": f"availability zone (default {DEFAULTS.availability_zone})",
        "db_name": f"database created with the instance (default {DEFAULTS.db_name})",
        "username": f"master username (default {DEFAULTS.username})",
        "publicly_accessible": "reachable from outside the VPC (default yes; --no-publicly-accessible)",
        "manage_password": "let RDS keep the master password in Secrets Manager",
        "wait": "wait until the instance is available",
        "timeout": f"seconds to wait with --wait {TIMEOUT_HELP}",
    }
)
def create(
    c,
    identifier=IDENTIFIER,
    instance_class=DEFAULTS.instance_class,
    engine_version=DEFAULTS.engine_version,
    storage=None,
    availability_zone=DEFAULTS.availability_zone,
    db_name=DEFAULTS.db_name,
    username=DEFAULTS.username,
    publicly_accessible=DEFAULTS.publicly_accessible,
    manage_password=False,
    wait=False,
    timeout=None,
):
    """Create the RDS PostgreSQL instance (an existing one is kept).

    The master password comes from RDS_MASTER_PASSWORD or a hidden prompt, never a flag.
    """
    from cruddur.aws import clients

    storage_gb = number(storage, "--storage", DEFAULTS.storage_gb, integer=True)
    timeout = number(timeout, "--timeout", library.DEFAULT_WAIT_TIMEOUT)
    config = settings()
    options = library.CreateOptions(
        identifier=identifier,
        instance_class=instance_class,
        engine_version=engine_version,
        storage_gb=storage_gb,
        availability_zone=availability_zone,
        db_name=db_name,
        username=username,
        publicly_accessible=publicly_accessible,
        manage_password=manage_password,
    )
    client = clients.client("rds")
    instance, created = library.create(client, options, lambda: _master_password(config))
    if created:
        print(f"creating {instance.identifier} ({instance.engine} {instance.engine_version}, {instance.instance_class}): {instance.status}")
    else:
        print(f"{instance.identifier} already exists: {instance.status}; left as it is")
    if wait:
        instance = _wait(client, instance.identifier, timeout)
        print(f"{instance.identifier}: {instance.status}")
    if instance.secret_arn:
        print(f"# the master password is in Secrets Manager: {instance.secret_arn}", file=sys.stderr)
    _print_url(instance)


@task(help={"identifier": IDENTIFIER_HELP, "json": "print the instance as JSON"})
def status(c, identifier=IDENTIFIER, json=False):
    """Show the instance: status, endpoint, engine, class, groups."""
    from cruddur.aws import clients

    instance = library.get_instance(clients.client("rds"), identifier)
    if json:
        import json as json_module

        print(json_module.dumps(instance.as_dict(), indent=2))
        return
    from rich.table import Table

    # One row per field: it stays readable in an 80-column terminal, where eight columns would not.
    table = Table(title=f"RDS instance {instance.identifier}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    rows = (
        ("identifier", instance.identifier),
        ("status", instance.status),
        ("endpoint", instance.endpoint),
        ("engine", f"{instance.engine} {instance.engine_version}"),
        ("class", instance.instance_class),
        ("storage", f"{instance.storage_gb} GB {instance.storage_type}"),
        ("public?", "yes" if instance.public else "no"),
        ("security groups", ", ".join(instance.security_groups) or "-"),
    )
    for name, value in rows:
        table.add_row(name, value)
    console().print(table)


@task(help={"identifier": IDENTIFIER_HELP, "timeout": f"give up after this many seconds {TIMEOUT_HELP}"})
def wait(c, identifier=IDENTIFIER, timeout=None):
    """Wait until the instance is available, showing its status."""
    from cruddur.aws import clients

    timeout = number(timeout, "--timeout", library.DEFAULT_WAIT_TIMEOUT)
    instance = _wait(clients.client("rds"), identifier, timeout)
    print(f"{instance.identifier}: {instance.status} at {instance.endpoint}")


@task(
    help={
        "identifier": IDENTIFIER_HELP,
        "show_password": "put RDS_MASTER_PASSWORD in the URL instead of ****",
    }
)
def url(c, identifier=IDENTIFIER, show_password=False):
    """Print the PROD_CONNECTION_URL export line, password masked."""
    from cruddur.aws import clients
    from cruddur.errors import ConfigError

    config = settings()
    password = None
    if show_password:
        if not config.rds_master_password:
            raise ConfigError(
                "--show-password needs the password: export RDS_MASTER_PASSWORD='...'"
                " (a password RDS manages stays in Secrets Manager)"
            )
        password = config.rds_master_password
    _print_url(library.get_instance(clients.client("rds"), identifier), password)


@task(help={"identifier": IDENTIFIER_HELP})
def stop(c, identifier=IDENTIFIER):
    """Stop the instance to save money (AWS restarts it after 7 days)."""
    from cruddur.aws import clients

    instance = library.stop(clients.client("rds"), identifier)
    print(f"{instance.identifier}: {instance.status} (AWS starts a stopped instance again after 7 days; inv rds.start)")


@task(help={"identifier": IDENTIFIER_HELP})
def start(c, identifier=IDENTIFIER):
    """Start a stopped instance."""
    from cruddur.aws import clients

    instance = library.start(clients.client("rds"), identifier)
    hint = "" if instance.status == "available" else " (inv rds.wait waits until it is available)"
    print(f"{instance.identifier}: {instance.status}{hint}")


@task(
    help={
        "identifier": IDENTIFIER_HELP,
        "skip_final_snapshot": "delete without a final snapshot (its data is gone for good)",
        "yes": "do not ask to type the identifier",
    }
)
def delete(c, identifier=IDENTIFIER, skip_final_snapshot=False, yes=False):
    """Delete the instance, after a final snapshot unless skipped.

    Asks to type the identifier on a terminal; refuses off a terminal without --yes.
    """
    from cruddur.aws import clients

    client = clients.client("rds")
    instance = library.get_instance(client, identifier)
    snapshot_note = "without a final snapshot" if skip_final_snapshot else "keeping a final snapshot"
    where = f"{instance.endpoint} in {clients.region(client)} ({snapshot_note})"
    confirm_destructive(f"delete RDS instance {instance.identifier}", instance.identifier, where, yes)
    instance, snapshot = library.delete(client, instance.identifier, skip_final_snapshot)
    print(f"{instance.identifier}: {instance.status}")
    print(f"final snapshot: {snapshot}" if snapshot else "no final snapshot (skipped)")
