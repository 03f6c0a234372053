"""The Cognito post-confirmation Lambda: package, deploy, run locally."""

from ._cli import console, settings, task

RUNTIME_HELP = "Lambda Python runtime to build for (default python3.12)"
ARCH_HELP = "x86_64 (default) or arm64"


def _build(runtime, arch):
    from cruddur.lambda_build import package as lambda_package

    out = console(stderr=True)
    with out.status(f"Building the zip for {runtime} on {arch}..."):
        return lambda_package.build(runtime=runtime, architecture=arch)


def _show_package(package):
    from rich.text import Text

    from cruddur.config import PROJECT_ROOT

    path = package.path.relative_to(PROJECT_ROOT) if package.path.is_relative_to(PROJECT_ROOT) else package.path
    out = console()
    out.print(Text(str(path), style="bold"))
    out.print(f"  size        {package.size:,} bytes ({package.size / 1_048_576:.2f} MiB zipped,"
              f" {package.unzipped_size / 1_048_576:.1f} MiB unzipped)")  # fmt: skip
    out.print(f"  files       {package.files}")
    out.print(f"  runtime     {package.runtime} ({package.architecture}), handler {package.handler}")
    out.print(f"  CodeSha256  {package.code_sha256}")


@task(help={"runtime": RUNTIME_HELP, "arch": ARCH_HELP, "json": "print the result as JSON"})
def package(c, runtime="python3.12", arch="x86_64", json=False):
    """Build the function's reproducible zip in dist/."""
    result = _build(runtime, arch)
    if json:
        import json as json_

        print(json_.dumps({
            "path": str(result.path), "size": result.size, "unzipped_size": result.unzipped_size,
            "files": result.files, "code_sha256": result.code_sha256, "runtime": result.runtime,
            "architecture": result.architecture, "handler": result.handler,
        }))  # fmt: skip
        return
    _show_package(result)


@task(
    help={
        "name": "the function to update (default cruddur-post-confirmation)",
        "runtime": RUNTIME_HELP,
        "arch": ARCH_HELP,
        "set_env": "also set the function's CONNECTION_URL from PROD_CONNECTION_URL (never printed)",
    }
)
def deploy(c, name="cruddur-post-confirmation", runtime="python3.12", arch="x86_64", set_env=False):
    """Upload the zip to the function, unless it already runs it."""
    from rich.text import Text

    from cruddur.aws import lambda_deploy
    from cruddur.postgres.target import resolve

    connection_url = resolve(settings(), prod=True).url if set_env else None
    result = _build(runtime, arch)
    out = console()
    with console(stderr=True).status(Text(f"Deploying to {name}...")):
        deployment = lambda_deploy.deploy(result, function=name, connection_url=connection_url)
    if deployment.code == "unchanged":
        out.print(Text(f"{name}: code unchanged (CodeSha256 {deployment.code_sha256})"))
    else:
        out.print(Text(f"{name}: code updated (CodeSha256 {deployment.code_sha256})"))
    if deployment.changed:
        shown = [
            "CONNECTION_URL (from PROD_CONNECTION_URL)" if setting == "CONNECTION_URL" else setting
            for setting in deployment.changed
        ]
        out.print(Text(f"{name}: configuration updated: {', '.join(shown)}"))
    else:
        out.print(Text(f"{name}: configuration unchanged"))


@task(
    help={
        "event": "a Cognito event JSON file (default lambda/events/confirm_sign_up.json)",
        "prod": "use PROD_CONNECTION_URL instead of the local database",
    }
)
def invoke(c, event=None, prod=False):
    """Run the handler locally on a sample event; show the row."""
    from pathlib import Path

    from rich.text import Text

    from cruddur.lambda_build import local as lambda_local
    from cruddur.postgres import target

    where = target.resolve(settings(), prod=prod)
    event_path = Path(event) if event else lambda_local.DEFAULT_EVENT
    # Everything below but the fixed words comes from the event or the database: shown as plain
    # text, never read as rich markup (a name holding "[/]" would otherwise crash the print).
    out = console()
    out.print(Text(f"Invoking the handler with {event_path.name} on the {where}"))
    result = lambda_local.invoke(event_path, where.url)
    for line in result.log:
        out.print(Text(f"  log: {line}"))
    out.print(f"  returned the event {'unchanged' if result.returned_unchanged else 'CHANGED'}")
    if result.row is None:
        out.print(Text(f"  no users row for sub {result.sub}"))
        return
    from rich.table import Table

    table = Table(title=Text(f"public.users where cognito_user_id = {result.sub}"))
    table.add_column("column")
    table.add_column("value")
    for column, value in result.row.items():
        table.add_row(Text(column), Text(str(value)))
    out.print(table)
