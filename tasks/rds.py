"""The production RDS instance: create, inspect, wait for, stop, start, delete, and its URL.

Nothing of the library loads at import (`inv --list` stays light): flags whose defaults live in
cruddur.aws.rds default to None here and are resolved inside the task; their help says the value.
"""

import sys

from cruddur.timeouts import RDS_WAIT_TIMEOUT

from ._cli import JSON_HELP, confirm_destructive, console, number, print_json, progress_line, settings, show, task
from ._protocol import DRY_RUN_HELP, dry_run_shown, is_dry, nothing_to_do

IDENTIFIER_HELP = "the RDS instance (default cruddur-db-instance)"
TIMEOUT_HELP = f"(default {RDS_WAIT_TIMEOUT:g})"
EXTENDED_SUPPORT_SHOWN = {
    "open-source-rds-extended-support": "yes: billed after standard support ends",
    "open-source-rds-extended-support-disabled": "no: major upgrade when standard support ends",
}


def _library():
    from cruddur.aws import rds

    return rds


def for_instance(command: str, identifier) -> str:
    """`command` for the instance: with --identifier unless it is the default one."""
    return _library().command_for(command, identifier)


def url_command(identifier) -> str:
    return for_instance("inv rds.url", identifier)


# Asks for the password without showing it or keeping it in the shell's history.
READ_PASSWORD = "read -rs RDS_MASTER_PASSWORD && export RDS_MASTER_PASSWORD"


def _read_password_line(config) -> str:
    """The line that sets RDS_MASTER_PASSWORD to a password the user types (kept out of the
    shell's history and off every command line)."""
    return READ_PASSWORD


def _password_at_hand(config) -> bool:
    """Whether a master password can be had: RDS_MASTER_PASSWORD, or a terminal to ask on."""
    return bool(config.rds_master_password) or sys.stdin.isatty()


def _master_password(config) -> str:
    """RDS_MASTER_PASSWORD, else a hidden prompt (twice) on a terminal; never a flag."""
    from cruddur.errors import ConfigError

    if config.rds_master_password:
        return config.rds_master_password
    if not _password_at_hand(config):
        raise ConfigError(
            "no master password (8 to 128 characters, none of / ' \" @ or spaces; or run on a terminal to be"
            " asked, or pass --manage-password to let RDS keep it in Secrets Manager); type one of your own"
            f" (not shown): {_read_password_line(config)}"
        )
    import getpass

    first = getpass.getpass("RDS master password (hidden): ")
    if getpass.getpass("Again: ") != first:
        raise ConfigError("the two passwords differ; nothing created")
    return first


def _next(step: str) -> None:
    print(f"next: {step}")


def _wait(client, identifier, timeout):
    """Wait for `available`: a spinner with status and elapsed time on a terminal, status lines otherwise."""
    import time

    library = _library()
    out = console(stderr=True)
    if not out.is_terminal:
        started = time.monotonic()
        seen = []

        def report(status):
            if not seen or seen[-1] != status:
                seen.append(status)
                print(f"{identifier}: {status} ({time.monotonic() - started:.0f}s)", file=sys.stderr)

        return library.wait_available(client, identifier, timeout, on_status=report)

    with progress_line(f"{identifier}: waiting for available") as progress:
        return library.wait_available(client, identifier, timeout, on_status=progress)


@task(
    help={
        "identifier": IDENTIFIER_HELP,
        "instance_class": "instance class (default db.t3.micro)",
        "engine_version": "PostgreSQL major (17: RDS picks its current minor) or full version (17.6) (default 17)",
        "extended_support": "let RDS keep an old major past standard support, billing RDS Extended Support"
        " (default: no; RDS upgrades the major when standard support ends)",
        "storage": "allocated gp2 storage in GB (default 20)",
        "availability_zone": "availability zone (default us-east-1a)",
        "db_name": "database created with the instance (default cruddur)",
        "username": "master username (default cruddurroot)",
        "publicly_accessible": "reachable from outside the VPC (default yes; --no-publicly-accessible)",
        "manage_password": "let RDS keep the master password in Secrets Manager (rotated every 7 days; rds.url reads it)",
        "iam_auth": "IAM database authentication, so the app's roles need no password (default yes; --no-iam-auth)",
        "wait": "wait until the instance is available",
        "timeout": f"seconds to wait with --wait {TIMEOUT_HELP}",
        "dry_run": DRY_RUN_HELP,
    }
)
def create(
    c,
    identifier=None,
    instance_class=None,
    engine_version=None,
    extended_support=False,
    storage=None,
    availability_zone=None,
    db_name=None,
    username=None,
    publicly_accessible=True,
    manage_password=False,
    iam_auth=True,
    wait=False,
    timeout=None,
    dry_run=False,
):
    """Create the RDS PostgreSQL instance (an existing one is kept).

    The master password comes from RDS_MASTER_PASSWORD or a hidden prompt, never a flag.
    """
    from cruddur.aws import clients

    library = _library()
    defaults = library.CreateOptions()
    storage_gb = number(storage, "--storage", defaults.storage_gb, integer=True)
    timeout = number(timeout, "--timeout", RDS_WAIT_TIMEOUT)
    config = settings()
    given = dict(
        identifier=identifier,
        instance_class=instance_class,
        engine_version=engine_version,
        availability_zone=availability_zone,
        db_name=db_name,
        username=username,
    )
    options = library.CreateOptions(
        **{name: value for name, value in given.items() if value is not None},
        storage_gb=storage_gb,
        publicly_accessible=publicly_accessible,
        manage_password=manage_password,
        extended_support=extended_support,
        iam_auth=iam_auth,
    )
    client = clients.client("rds")
    if is_dry(c, dry_run):
        existing = library.existing_for_create(client, options)
        plan = options.summary() if existing is None else [_kept(existing, "would be left")]
        if existing is None and not manage_password and not _password_at_hand(config):
            plan.append("  but no RDS_MASTER_PASSWORD is set and there is no terminal to ask for one: the real run would stop there")
        dry_run_shown(c, plan, dry_run=dry_run)
        return
    instance, created = library.create(client, options, lambda: _master_password(config))
    engine = f"{instance.engine} {instance.engine_version}"
    if created:
        print(f"creating {instance.identifier} ({engine}, {instance.instance_class}): {instance.status}")
    else:
        print(_kept(instance, "left"))
    if wait:
        instance = _wait(client, instance.identifier, timeout)
        print(f"{instance.identifier}: {instance.status} ({instance.engine} {instance.engine_version})")
    if instance.secret_arn:
        print(f"# the master password is in Secrets Manager: {instance.secret_arn}", file=sys.stderr)
    sg_update = for_instance("inv sg.update", instance.identifier)
    if instance.status == "available":
        _next(f"{sg_update} (opens port 5432 of the instance's security group to this workspace)")
    else:
        _next(f"{for_instance('inv rds.wait', instance.identifier)}, then {sg_update}")


def _kept(instance, verb: str) -> str:
    return f"{instance.identifier} already exists ({instance.engine} {instance.engine_version}): {instance.status}; {verb} as it is"


@task(help={"identifier": IDENTIFIER_HELP, "json": JSON_HELP})
def status(c, identifier=None, json_=False):
    """Show the instance: status, endpoint, engine version, class, groups."""
    from cruddur.aws import clients

    instance = _library().get_instance(clients.client("rds"), _library().chosen_identifier(identifier))
    if json_:
        print_json(instance)
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
        ("extended support", EXTENDED_SUPPORT_SHOWN.get(instance.lifecycle_support, "not reported")),
    )
    for name, value in rows:
        table.add_row(name, value)
    show(table)


@task(help={"identifier": IDENTIFIER_HELP, "timeout": f"give up after this many seconds {TIMEOUT_HELP}"})
def wait(c, identifier=None, timeout=None):
    """Wait until the instance is available, showing its status."""
    from cruddur.aws import clients

    timeout = number(timeout, "--timeout", RDS_WAIT_TIMEOUT)
    instance = _wait(clients.client("rds"), _library().chosen_identifier(identifier), timeout)
    print(f"{instance.identifier}: {instance.status} at {instance.endpoint}")
    _next(for_instance("inv sg.update", instance.identifier))


@task(
    help={
        "identifier": IDENTIFIER_HELP,
        "show_password": "print only the URL with the master password in it, for $(...) or a pipe (it shows the password):"
        " RDS_MASTER_PASSWORD, or the instance's MasterUserSecret when RDS manages the password",
    }
)
def url(c, identifier=None, show_password=False):
    """Print the line that sets PROD_CONNECTION_URL, without showing the password.

    The line reads the password when it runs (from RDS_MASTER_PASSWORD, or from Secrets Manager
    when RDS manages it), percent-encoded, so it works as pasted; the masked URL and how to keep
    the setting go to stderr.
    """
    from cruddur.aws import clients
    from cruddur.errors import ConfigError

    identifier = _library().chosen_identifier(identifier)
    config = settings()
    instance = _library().get_instance(clients.client("rds"), identifier)
    if not instance.host:
        raise ConfigError(
            f"{identifier} has no endpoint yet ({instance.status}); run {for_instance('inv rds.wait', identifier)},"
            f" then {url_command(identifier)}"
        )
    managed = instance.secret_arn is not None
    if show_password:
        if managed:
            from cruddur.aws import master_secret

            print(f"# the password comes from Secrets Manager ({instance.secret_arn})", file=sys.stderr)
            print(master_secret.master_url(clients.client("secretsmanager"), instance))
            return
        if not config.rds_master_password:
            # Inside $(...) this line is all the user sees, and the variable is then set but empty.
            raise ConfigError(
                "--show-password needs RDS_MASTER_PASSWORD, which is not set (a password RDS manages stays in Secrets"
                f" Manager); set it, then set the URL again: {_read_password_line(config)}"
                f' && export PROD_CONNECTION_URL="$({url_command(identifier)} --show-password)"'
            )
        print(instance.connection_url(config.rds_master_password))
        return
    command = f"{url_command(identifier)} --show-password"
    print(f'export PROD_CONNECTION_URL="$({command})"')
    source = "reads the password from Secrets Manager, where RDS manages and rotates it" if managed else "needs RDS_MASTER_PASSWORD"
    print(f"# that sets {instance.connection_url()} ({source})", file=sys.stderr)
    keep = config.workspace.keep_secret_line("PROD_CONNECTION_URL", command)
    if keep:
        print(f"# to keep it: {keep}", file=sys.stderr)
    if managed:
        print("# RDS rotates the password every 7 days: run the export line again after a rotation", file=sys.stderr)
    print("# next: inv db.schema-load --prod, then inv db.migrate --prod (the schema, then every migration, on RDS)", file=sys.stderr)
    print("# then: inv db.roles --prod (the Lambda's and the backend's own roles, IAM auth)", file=sys.stderr)


@task(help={"identifier": IDENTIFIER_HELP, "dry_run": DRY_RUN_HELP})
def stop(c, identifier=None, dry_run=False):
    """Stop the instance to save money (AWS restarts it after 7 days)."""
    instance = _move(c, "stop", identifier, dry_run)
    if instance:
        start_again = for_instance("inv rds.start", instance.identifier)
        print(f"{instance.identifier}: {instance.status} (AWS starts a stopped instance again after 7 days; {start_again})")


@task(help={"identifier": IDENTIFIER_HELP, "dry_run": DRY_RUN_HELP})
def start(c, identifier=None, dry_run=False):
    """Start a stopped instance."""
    instance = _move(c, "start", identifier, dry_run)
    if instance:
        hint = (
            "" if instance.status == "available" else f"; wait until it is available: {for_instance('inv rds.wait', instance.identifier)}"
        )
        print(f"{instance.identifier}: {instance.status}{hint}")


def _move(c, action: str, identifier, dry_run):
    """Stop or start the instance; the instance after the move, or None when it was already there
    or this is a dry run (which says what it would do)."""
    from cruddur.aws import clients

    dry = is_dry(c, dry_run)
    instance, moved = getattr(_library(), action)(clients.client("rds"), _library().chosen_identifier(identifier), dry=dry)
    if not moved:
        nothing_to_do(c, f"{instance.identifier} is already {instance.status}; nothing to do", dry_run=dry_run)
        return None
    if dry_run_shown(c, [f"would {action} {instance.identifier} (now: {instance.status})"], dry_run=dry_run):
        return None
    return instance


@task(
    help={
        "identifier": IDENTIFIER_HELP,
        "skip_final_snapshot": "delete without a final snapshot (its data is gone for good)",
        "yes": "do not ask to type the identifier",
        "dry_run": DRY_RUN_HELP,
    }
)
def delete(c, identifier=None, skip_final_snapshot=False, yes=False, dry_run=False):
    """Delete the instance, after a final snapshot unless skipped.

    Asks to type the identifier on a terminal; refuses off a terminal without --yes.
    """
    from cruddur.aws import clients

    library = _library()
    client = clients.client("rds")
    instance = library.get_instance(client, library.chosen_identifier(identifier))
    snapshot_note = "without a final snapshot" if skip_final_snapshot else "keeping a final snapshot"
    where = f"{instance.endpoint} in {clients.region(client)} ({snapshot_note})"
    if dry_run_shown(c, [f"would delete RDS instance {instance.identifier} ({instance.status}) at {where}"], dry_run=dry_run):
        return
    confirm_destructive(f"delete RDS instance {instance.identifier}", instance.identifier, where, yes)
    instance, snapshot = library.delete(client, instance.identifier, skip_final_snapshot)
    print(f"{instance.identifier}: {instance.status}")
    print(f"final snapshot: {snapshot}" if snapshot else "no final snapshot (skipped)")
