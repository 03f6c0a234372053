"""The one protocol for a task that writes: plan, confirm, back up, act, verify.

A write task reads what it would change (its plan: lines saying what will change) and calls
`begin`. With `inv --dry` (Invoke's core flag) or the task's own --dry-run, begin prints the
plan and says nothing changed: the task returns without writing. On --prod begin prints the
plan, asks for the typed database name (on stderr; --yes skips; no terminal and no --yes
refuses, changing nothing), finishes a swap an interrupted db.setup or db.restore left half
done, and backs the database up under backups/ where data can be lost (--no-backup skips).
Then the task acts, and `verify` reads the database back and says what is now true.

`confirm` is begin for a write that printed its own plan and loses no rows. `dry_run_shown`
is the dry-run half alone, for writes that ask no database name (AWS, files, a read-only
command); `nothing_to_do` ends a run that found nothing to change, dry or not."""

from __future__ import annotations

import sys
from pathlib import Path

from cruddur.formats import byte_size

from ._cli import confirm_destructive, progress_line, recover_swap, settings

NO_BACKUP_HELP = "with --prod: skip the backup taken before anything changes"
DRY_RUN_HELP = "print the plan and change nothing (as inv --dry does)"


def is_dry(c, dry_run: bool = False) -> bool:
    """Whether this run only shows its plan: the task's --dry-run, or Invoke's core --dry."""
    return bool(dry_run) or bool(c.config.run.dry)


DRY_RUN_DONE = "dry run: nothing changed"


def dry_run_shown(c, plan: list[str], *, dry_run: bool = False, stream=None) -> bool:
    """In a dry run, print the plan and say that nothing changed: True, and the task stops there.
    Otherwise False, nothing printed."""
    if not is_dry(c, dry_run):
        return False
    _print_plan(plan + [DRY_RUN_DONE], stream or sys.stdout)
    return True


def nothing_to_do(c, *lines: str, dry_run: bool = False, stream=None) -> None:
    """Say that there is nothing to change (`lines`), and in a dry run that nothing changed: a
    dry run's last line is the same whatever it found."""
    if not dry_run_shown(c, list(lines), dry_run=dry_run, stream=stream):
        _print_plan(list(lines), stream or sys.stdout)


def _print_plan(lines: list[str], out) -> None:
    for line in lines:
        print(line, file=out, flush=True)


def begin(
    c,
    target,
    action: str,
    plan: list[str],
    *,
    yes: bool = False,
    no_backup: bool = False,
    dry_run: bool = False,
    backup: bool = True,
    recover: bool = True,
    stream=None,
) -> bool:
    """Plan, confirm and back up before a write; False when this is a dry run (nothing changed).

    `action` completes "About to ... database 'cruddur'"; `plan` is printed on prod and in a dry
    run (on `stream`, stdout unless the task keeps stdout for --json). `backup`: whether the write
    can lose data (a dump is then taken on prod). `recover`: whether to settle a half-done swap
    after the confirmation (tasks that settle it under their own lock pass False)."""
    out = stream or sys.stdout
    if dry_run_shown(c, plan, dry_run=dry_run, stream=out):
        return False
    if not target.prod:
        return True
    _print_plan(plan, out)
    confirm_destructive(f"{action} database {target.dbname!r}", target.dbname, str(target), yes)
    if recover:
        recover_swap(target)
    if backup and not no_backup:
        back_up(target, out)
    return True


def confirm(c, target, action: str, yes: bool, dry_run: bool = False) -> bool:
    """The protocol for a write that printed its own plan and loses no rows (no backup): False in
    a dry run (nothing changed), else on --prod the typed database name."""
    return begin(c, target, action, [], yes=yes, backup=False, dry_run=dry_run)


def back_up(target, out=None) -> Path | None:
    """Dump the target's database under backups/ (mode 0600) and name the file; None (and a line
    saying so) when the database does not exist, so there is nothing to lose."""
    from cruddur.errors import NoSuchDatabase
    from cruddur.postgres import dump
    from cruddur.postgres.connect import connect

    out = out or sys.stdout
    try:
        connect(target.url).close()
    except NoSuchDatabase:
        print(f"  no backup: {target.dbname} does not exist", file=out)
        return None
    path = dump.default_path(settings().backups_dir, target.dbname)
    print(f"  backing up {target.dbname} to {path} ...", file=out, flush=True)
    with progress_line(f"backing up {target.dbname}") as report:
        size = dump.dump(target.url, path, report)
    print(f"  backup written: {path} ({byte_size(size)}); undo with: inv db.restore {path} --prod", file=out, flush=True)
    return path


def table_lines(url: str, indent: str = "  ") -> list[str]:
    """The database's tables with their rows and sizes, one line each (for a plan)."""
    from cruddur.postgres import inventory

    return _lines(inventory.tables(url), indent)


def _lines(found, indent: str) -> list[str]:
    if found is None:
        return [f"{indent}(the database does not exist)"]
    if not found:
        return [f"{indent}(no tables)"]
    return [f"{indent}{t.qualified}: {'' if t.exact else '~'}{t.rows} row(s), {byte_size(t.bytes)}" for t in found]


def verify(target, stream=None) -> None:
    """Read the database back after a write and say what is now true."""
    from cruddur.postgres import inventory

    out = stream or sys.stdout
    found = inventory.tables(target.url)
    if found is None:
        print(f"now {target.dbname} does not exist", file=out)
        return
    print(f"now {target.dbname} holds {len(found)} table(s):", file=out)
    print("\n".join(_lines(found, "  ")), file=out)
