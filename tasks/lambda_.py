"""The Cognito post-confirmation Lambda: package, deploy, attach to the pool, run locally."""

import shlex
import sys

from cruddur.files import shown_path
from cruddur.formats import byte_size

# Light at the top (boto3, psycopg and the build load inside the tasks); the flags' defaults come from them.
from cruddur.lambda_build.defaults import DEFAULT_ARCHITECTURE, DEFAULT_RUNTIME, FUNCTION_NAME

from ._cli import (
    JSON_HELP,
    PROD_HELP,
    PROJECT_ROOT,
    YES_HELP,
    app_database,
    console,
    number,
    print_json,
    printable,
    progress_line,
    settings,
    show,
    task,
)
from ._protocol import DRY_RUN_HELP, dry_run_shown, is_dry

RUNTIME_HELP = f"Lambda Python runtime to build for (default {DEFAULT_RUNTIME}, this Python's: only it puts byte code in the zip)"
ARCH_HELP = f"x86_64 or arm64 (default {DEFAULT_ARCHITECTURE})"
NAME_HELP = f"the function (default {FUNCTION_NAME})"


def _build(runtime, arch, output=None):
    from cruddur.lambda_build import package as lambda_package

    options = {"output": output} if output else {}
    with progress_line(f"building the zip for {runtime} on {arch}") as report:
        built = lambda_package.build(runtime=runtime, architecture=arch, progress=report, **options)
    if built.bytecode_note:
        print(built.bytecode_note, file=sys.stderr)
    return built


def _show_package(package) -> None:
    """The zip's summary: path, sizes, file count, runtime and CodeSha256."""
    from rich.text import Text

    out = console()
    out.print(Text(str(shown_path(package.path, PROJECT_ROOT)), style="bold"))
    out.print(f"  size        {package.size:,} bytes ({byte_size(package.size)} zipped, {byte_size(package.unzipped_size)} unzipped)")
    out.print(f"  files       {package.files}{'' if package.bytecode else ' (no byte code)'}")
    out.print(f"  runtime     {package.runtime} ({package.architecture}), handler {package.handler}")
    out.print(f"  CodeSha256  {package.code_sha256}")


@task(
    help={
        "runtime": RUNTIME_HELP,
        "arch": ARCH_HELP,
        "output": "where to write the zip (default dist/cruddur-post-confirmation.zip)",
        "json_": JSON_HELP,
        "dry_run": DRY_RUN_HELP,
    }
)
def package(c, runtime=DEFAULT_RUNTIME, arch=DEFAULT_ARCHITECTURE, output=None, json_=False, dry_run=False):
    """Build the function's reproducible zip in dist/."""
    from pathlib import Path

    if is_dry(c, dry_run):
        from cruddur.lambda_build import package as lambda_package

        planned = lambda_package.plan(runtime, arch, Path(output) if output else None)
        plan = [
            printable(
                f"would build the zip for {planned.runtime} on {planned.architecture}"
                f" ({'with' if planned.bytecode else 'without'} byte code) and write it to {shown_path(planned.output, PROJECT_ROOT)}"
                f"{' (replacing the file there)' if planned.replaces else ''}"
            )
        ]
        if json_:  # stdout stays one JSON document: what would be built; the words go to stderr
            print_json(planned)
        dry_run_shown(c, plan, dry_run=dry_run, stream=sys.stderr if json_ else None)
        return
    result = _build(runtime, arch, Path(output) if output else None)
    if json_:
        print_json(result)
        return
    _show_package(result)


@task(
    help={
        "name": NAME_HELP,
        "runtime": RUNTIME_HELP,
        "arch": ARCH_HELP,
        "set_env": "also point the function at the RDS instance (--instance): DB_HOST, DB_PORT, DB_NAME, DB_USER=cruddur_signup,"
        " DB_AUTH=iam (no password; an old CONNECTION_URL is removed), and let its role rds-db:connect as that user",
        "instance": "the RDS instance: with --set-env, the one it connects to; creating, the one whose subnets and security"
        " groups the function joins (default cruddur-db-instance)",
        "concurrency": "reserved concurrency: at most this many copies run, each holding one database connection"
        " (default 5, room beside the backend on a db.t3.micro)",
        "role_arn": "creating: the execution role (default LAMBDA_ROLE_ARN)",
        "subnet_ids": "creating: comma-separated subnet ids instead of the instance's",
        "security_group_ids": "creating: comma-separated security group ids instead of the instance's",
        "timeout": "creating: the function's timeout in seconds (default 5: Cognito waits no longer)",
        "dry_run": DRY_RUN_HELP + "; the zip is built in a temporary folder to compare its code",
    }
)
def deploy(
    c,
    name=FUNCTION_NAME,
    runtime=DEFAULT_RUNTIME,
    arch=DEFAULT_ARCHITECTURE,
    set_env=False,
    role_arn=None,
    instance=None,
    concurrency=None,
    subnet_ids=None,
    security_group_ids=None,
    timeout=None,
    dry_run=False,
):
    """Upload the zip to the function (creating it when missing), unless it already runs it."""
    import tempfile
    from contextlib import nullcontext
    from pathlib import Path

    from rich.text import Text

    from cruddur.aws import clients, lambda_deploy
    from cruddur.aws.rds import chosen_identifier
    from cruddur.lambda_build.defaults import DEFAULT_TIMEOUT_SECONDS

    config = settings()
    seconds = number(timeout, "--timeout", DEFAULT_TIMEOUT_SECONDS, minimum=1, integer=True)
    reserved = number(concurrency, "--concurrency", lambda_deploy.DEFAULT_RESERVED_CONCURRENCY, minimum=1, integer=True)
    database = lambda_deploy.database_access(clients.client("rds"), chosen_identifier(instance)) if set_env else None

    def new_function():
        role = lambda_deploy.role_arn(config, role_arn)
        subnets, groups = _ids(subnet_ids), _ids(security_group_ids)
        if not (subnets and groups):
            found_subnets, found_groups = lambda_deploy.database_vpc(clients.client("rds"), chosen_identifier(instance))
            subnets, groups = subnets or found_subnets, groups or found_groups
        return lambda_deploy.NewFunction(role, subnets, groups, seconds)

    lambda_client = lambda_deploy.client()
    # What creating the function needs (a role, the database's network) is settled before the build.
    creating = None if lambda_deploy.exists(lambda_client, name) else new_function()
    dry = is_dry(c, dry_run)
    # A dry run builds in a temporary folder, removed afterwards: dist/ stays as it is.
    with tempfile.TemporaryDirectory(prefix="cruddur-lambda-") if dry else nullcontext() as scratch:
        result = _build(runtime, arch, Path(scratch) / "function.zip" if dry else None)
        with console(stderr=True).status(Text(f"{'Comparing with' if dry else 'Deploying to'} {name}...")):
            deployment = lambda_deploy.deploy(
                result,
                function=name,
                database=database,
                lambda_client=lambda_client,
                new_function=(lambda: creating) if creating else new_function,
                reserved_concurrency=reserved,
                dry=dry,
            )
    lines = _deployment_lines(name, deployment, creating if deployment.code == "created" else None, database, dry)
    if dry_run_shown(c, lines, dry_run=dry_run):
        return
    out = console()
    for line in lines:
        out.print(Text(line))
    if database is not None:
        print(f"next: inv db.roles --prod (creates {database.user} with IAM authentication, if not done yet)", file=sys.stderr)
    if deployment.code == "created":
        out.print(Text(f"next: inv lambda.attach{'' if name == FUNCTION_NAME else ' --name ' + shlex.quote(name)}"))


def _deployment_lines(name, deployment, created, database, dry) -> list[str]:
    """What the deploy did, or in a dry run would do (`created`: the new function's settings)."""
    would = "would be " if dry else ""
    lines = [f"{name}: code {would}{deployment.code} (CodeSha256 {deployment.code_sha256})"]
    if created is not None and dry:
        lines.append(
            f"{name}: role {created.role_arn}, subnets {', '.join(created.subnet_ids)}, security groups"
            f" {', '.join(created.security_group_ids)}, timeout {created.timeout} s"
        )
    if deployment.changed:
        lines.append(
            f"{name}: configuration {would}{'set' if deployment.code == 'created' else 'updated'}: {', '.join(deployment.changed)}"
        )
    elif deployment.code != "created":
        lines.append(f"{name}: configuration unchanged")
    if database is not None:
        state = ("would allow" if dry else "now allows") if deployment.policy_changed else "allows"
        lines.append(f"{name}: its role {state} rds-db:connect as {database.user} ({database.resource_arn})")
        lines.append(
            f"{name}: {'would connect' if dry else 'connects'} to {database.host}:{database.port}/{database.dbname}"
            " with IAM tokens over TLS, no password"
        )
    state = f"{would}set to" if deployment.concurrency_changed else "stays at"
    lines.append(
        f"{name}: reserved concurrency {state} {deployment.concurrency}: at most {deployment.concurrency} database"
        " connections from sign-ups, so a burst cannot use up the instance's (Cognito retries the throttled ones)"
    )
    return [printable(line) for line in lines]


def _ids(value) -> tuple[str, ...]:
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


@task(help={"name": NAME_HELP, "dry_run": DRY_RUN_HELP})
def attach(c, name=FUNCTION_NAME, dry_run=False):
    """Make the function the pool's post-confirmation trigger (AWS_COGNITO_USER_POOL_ID)."""
    from rich.text import Text

    from cruddur.aws import clients, cognito

    pool = cognito.pool_id(settings())
    dry = is_dry(c, dry_run)
    attachment = cognito.attach(clients.client("cognito-idp"), clients.client("lambda"), pool, name, dry=dry)
    lines = []
    if not attachment.changed:
        lines.append(f"{pool}: {name} is already its post-confirmation trigger; nothing to do")
    if attachment.permission_granted:
        lines.append(f"{name}: Cognito pool {pool} {'would be allowed to' if dry else 'may now'} invoke it")
    if attachment.trigger_changed:
        before = f" (was {attachment.previous_trigger})" if attachment.previous_trigger else ""
        lines.append(f"{pool}: post-confirmation trigger {'would be ' if dry else ''}set to {attachment.function_arn}{before}")
    lines = [printable(line) for line in lines]
    if dry_run_shown(c, lines, dry_run=dry_run):
        return
    out = console()
    for line in lines:
        out.print(Text(line))


@task(
    help={
        "event": "a Cognito event JSON file (default lambda/events/confirm_sign_up.json)",
        "prod": PROD_HELP,
        "yes": YES_HELP,
    }
)
def invoke(c, event=None, prod=False, yes=False):
    """Run the handler locally on a sample event; show the row."""
    from pathlib import Path

    from rich.text import Text

    from cruddur.lambda_build import local as lambda_local

    from ._protocol import begin, is_dry

    where = app_database(prod, dry=is_dry(c))
    event_path = Path(event) if event else lambda_local.DEFAULT_EVENT
    lambda_local.read_event(event_path)  # a bad event file is reported before anyone is asked to confirm
    plan = [printable(f"will run the handler on {event_path.name}, which saves its user in the {where}")]
    if not begin(c, where, f"save the user of {event_path.name} in", plan, yes=yes, backup=False):
        return
    # Everything below but the fixed words comes from the event or the database, written by other
    # people: shown through printable() as plain text, never read as rich markup (a name holding
    # "[/]" would otherwise crash the print) nor run by the terminal (an escape sequence).
    out = console()
    out.print(Text(printable(f"Invoking the handler with {event_path.name} on the {where}")))
    result = lambda_local.invoke(event_path, where.url)
    for line in result.log:
        out.print(Text(printable(f"  log: {line}")))
    out.print(f"  returned the event {'unchanged' if result.returned_unchanged else 'CHANGED'}")
    if result.row is None:
        out.print(Text(printable(f"  no users row for sub {result.sub}")))
        return
    from rich.table import Table

    table = Table(title=Text(printable(f"public.users where cognito_user_id = {result.sub}")))
    table.add_column("column")
    table.add_column("value")
    for column, value in result.row.items():
        table.add_row(Text(column), Text(printable(value)))
    show(table)
