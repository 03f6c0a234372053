"""Schema migrations (dbmate's format) and backups of the app database."""

from __future__ import annotations

import sys
from pathlib import Path

from cruddur.errors import CheckFailed, UsageError
from cruddur.formats import byte_size, moment
from cruddur.timeouts import MIGRATION_LOCK_TIMEOUT

from ._cli import (
    JSON_HELP,
    PROD_HELP,
    YES_HELP,
    app_database,
    finish_swap_first,
    guard_prod,
    number,
    print_json,
    settings,
    show,
    task,
)

LOCK_HELP = f"seconds a migration may wait for a table lock before giving up (default {MIGRATION_LOCK_TIMEOUT:g})"
NO_BACKUP_HELP = "with --prod: skip the backup taken before anything changes"


def _folders() -> tuple[Path, Path]:
    """The migrations folder, and the root that file names in messages are relative to."""
    config = settings()
    return config.sql_dir / "migrations", config.project_dir


def _backup(target) -> None:
    from cruddur.postgres import dump

    path = dump.default_path(settings().backups_dir, target.dbname)
    print(f"  backing up {target.dbname} to {path} ...", flush=True)
    size = dump.dump(target.url, path)
    print(f"  backup written: {path} ({byte_size(size)})")


def _milliseconds(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


@task(help={"name": "what the migration does, in lowercase words joined by underscores (add_bio_to_users)"})
def new_migration(c, name):
    """Write sql/migrations/<UTC time>_NAME.sql and print its path."""
    from cruddur.postgres import migrations as runner

    directory, root = _folders()
    path = runner.new_migration(directory, name)
    print(path.relative_to(root) if path.is_relative_to(root) else path)


@task(
    help={
        "prod": PROD_HELP,
        "yes": YES_HELP,
        "to": "apply the pending migrations up to and including this version only",
        "dry_run": "print the plan and change nothing",
        "lock_timeout": LOCK_HELP,
        "allow_out_of_order": "also apply pending versions older than the newest applied one (a branch merged late)",
        "no_backup": NO_BACKUP_HELP,
    }
)
def migrate(c, prod=False, yes=False, to=None, dry_run=False, lock_timeout=None, allow_out_of_order=False, no_backup=False):
    """Apply the pending migrations, oldest first."""
    from cruddur.postgres import migrations as runner

    lock_timeout = number(lock_timeout, "--lock-timeout", default=MIGRATION_LOCK_TIMEOUT, minimum=0.001)
    directory, root = _folders()
    target = app_database(prod)
    if not dry_run:
        finish_swap_first(target, yes)
    if dry_run or prod:
        files, applied = runner.inspect(target.url, directory, root)
        if prod:
            runner.refuse_changed_files(files, applied)
        pending = runner.plan(files, applied, to, allow_out_of_order)
        if not pending:
            print(f"nothing to do: {target} is up to date")
            return
        print(f"{'would apply' if dry_run else 'will apply'} {len(pending)} migration(s) to {target}:")
        _list(pending)
        if dry_run:
            return
        _confirm_and_back_up(target, f"apply {len(pending)} migration(s) to", yes, no_backup)
    else:
        print(f"migrating {target}")
    done = runner.migrate(
        target.url,
        directory,
        to=to,
        allow_out_of_order=allow_out_of_order,
        refuse_changed=prod,
        lock_timeout=lock_timeout,
        label_root=root,
        confirmed=pending if prod else None,
        on_applied=lambda step: print(f"  applied {step.version}_{step.name} ({_milliseconds(step.seconds)})", flush=True),
    )
    if not done:
        print(f"nothing to do: {target.dbname} is up to date")
    else:
        print(f"{len(done)} applied; {target.dbname} is at version {done[-1].version}")


@task(
    help={
        "prod": PROD_HELP,
        "yes": YES_HELP,
        "steps": "how many of the newest applied migrations to undo (default 1)",
        "to": "undo every applied migration newer than this version (it stays applied)",
        "lock_timeout": LOCK_HELP,
        "no_backup": NO_BACKUP_HELP,
    }
)
def rollback(c, prod=False, yes=False, steps=None, to=None, lock_timeout=None, no_backup=False):
    """Undo the newest applied migrations (default one)."""
    from cruddur.postgres import migrations as runner

    if steps is not None and to is not None:
        raise UsageError("give --steps or --to, not both")
    steps = number(steps, "--steps", default=1, minimum=1, integer=True)
    lock_timeout = number(lock_timeout, "--lock-timeout", default=MIGRATION_LOCK_TIMEOUT, minimum=0.001)
    directory, root = _folders()
    target = app_database(prod)
    finish_swap_first(target, yes)
    files, applied = runner.inspect(target.url, directory, root)
    chosen = runner.rollback_plan(files, applied, steps, to)
    if not chosen:
        print(f"nothing to do: no migration to roll back on {target}")
        return
    # On prod the plan comes first: nothing is "rolling back" until the question is answered.
    print(f"{'will roll back' if prod else 'rolling back'} {len(chosen)} migration(s) on {target}:")
    if prod:
        _list(chosen)
        _confirm_and_back_up(target, f"roll back {len(chosen)} migration(s) of", yes, no_backup)
    runner.rollback(
        target.url,
        directory,
        steps=steps,
        to=to,
        lock_timeout=lock_timeout,
        label_root=root,
        confirmed=chosen if prod else None,
        on_rolled_back=lambda step: print(f"  rolled back {step.version}_{step.name} ({_milliseconds(step.seconds)})", flush=True),
    )


def _list(plan) -> None:
    for migration in plan:
        print(f"  {migration.version}_{migration.name}")


def _confirm_and_back_up(target, action: str, yes: bool, no_backup: bool) -> None:
    """On production: the guard, then a backup unless --no-backup (its path printed)."""
    guard_prod(target, action, yes)
    if not no_backup:
        _backup(target)


@task(
    help={
        "prod": PROD_HELP,
        "json": JSON_HELP,
        "check": "exit 1 when a migration is pending or an applied file changed (for CI and start-up scripts)",
    }
)
def migrations(c, prod=False, json_=False, check=False):
    """Show each migration's state: applied, pending, changed..."""
    from cruddur.postgres import migrations as runner

    directory, root = _folders()
    target = app_database(prod)
    rows = runner.status(target.url, directory, root)
    if json_:
        print_json(rows)
    elif sys.stdout.isatty():
        show(_table(rows, target))
    else:
        # Plain columns for pipes and scripts (and fast with a thousand migrations).
        _print_plain(rows)
    if check:
        wrong = [row for row in rows if row.state in (runner.PENDING, runner.CHANGED)]
        if wrong:
            states = sorted({row.state for row in wrong})
            raise CheckFailed(f"{len(wrong)} migration(s) {' or '.join(states)} on {target}")


def _print_plain(rows) -> None:
    width = max([len(row.name) for row in rows] + [4])
    lines = [f"{'version':<14}  {'name':<{width}}  {'state':<24}  applied at"]
    lines += [f"{row.version:<14}  {row.name:<{width}}  {row.state:<24}  {moment(row.applied_at)}".rstrip() for row in rows]
    print("\n".join(lines))


def _table(rows, target):
    from rich.table import Table

    table = Table(caption=f"{len(rows)} migration(s) on {target}", caption_justify="left")
    for column in ("version", "name", "state", "applied at"):
        table.add_column(column, no_wrap=column != "name", overflow="ellipsis")
    for row in rows:
        table.add_row(row.version, row.name, row.state, moment(row.applied_at))
    return table


@task(help={"prod": PROD_HELP, "output": "write here instead of backups/<db>-<UTC time>.dump"})
def dump(c, prod=False, output=None):
    """Back up the app database to a pg_dump file and print its path."""
    from cruddur.postgres import dump as backups

    target = app_database(prod)
    path = Path(output) if output else backups.default_path(settings().backups_dir, target.dbname)
    size = backups.dump(target.url, path)
    print(f"dumped {target} to {path} ({byte_size(size)})")


@task(help={"prod": PROD_HELP, "yes": YES_HELP, "file": "the .dump file to restore (from inv db.dump); also the first argument"})
def restore(c, file, prod=False, yes=False):
    """Replace the app database with a dump (swapped in whole)."""
    from cruddur.postgres import dump as backups

    target = app_database(prod, recover=False)  # the restore finishes an interrupted swap itself
    guard_prod(target, f"restore {file} over", yes)
    print(f"restoring {file} into {target}")
    existed = backups.restore(target.url, Path(file))
    print(f"  {'replaced' if existed else 'created'} {target.dbname} from {file}")
