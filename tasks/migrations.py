"""Schema migrations (dbmate's format) and backups of the app database."""

from __future__ import annotations

import sys
from pathlib import Path

from cruddur.errors import CheckFailed, UsageError
from cruddur.files import shown_path
from cruddur.formats import byte_size, duration, moment
from cruddur.timeouts import MAX_LOCK_TIMEOUT, MIGRATION_LOCK_TIMEOUT

from ._cli import (
    JSON_HELP,
    PROD_HELP,
    YES_HELP,
    app_database,
    finish_swap_first,
    lock_timeout_flag,
    number,
    print_json,
    printable,
    progress_line,
    settings,
    show,
    task,
)
from ._protocol import DRY_RUN_HELP, NO_BACKUP_HELP, begin, confirm, dry_run_shown, is_dry, nothing_to_do, table_lines, verify

LOCK_HELP = (
    f"seconds a migration may wait for a table lock before giving up (default {MIGRATION_LOCK_TIMEOUT:g}, at most {MAX_LOCK_TIMEOUT:g})"
)


def _folders() -> tuple[Path, Path]:
    """The migrations folder, and the root that file names in messages are relative to."""
    config = settings()
    return config.sql_dir / "migrations", config.project_dir


@task(help={"name": "what the migration does, in lowercase words joined by underscores (add_bio_to_users)"})
def new_migration(c, name):
    """Write sql/migrations/<UTC time>_NAME.sql and print its path."""
    from cruddur.postgres import migrations as runner

    directory, root = _folders()
    path = runner.new_migration(directory, name, dry_run=is_dry(c))
    shown = shown_path(path, root)
    if not dry_run_shown(c, [f"would write {shown}"]):
        print(shown)


@task(
    help={
        "prod": PROD_HELP,
        "yes": YES_HELP,
        "to": "apply the pending migrations up to and including this version only",
        "dry_run": DRY_RUN_HELP,
        "lock_timeout": LOCK_HELP,
        "allow_out_of_order": "also apply pending versions older than the newest applied one (a branch merged late)",
        "no_backup": NO_BACKUP_HELP,
        "retries": "after a lock timeout, try the migration again up to N times, pausing longer each time (default 3 with --prod, else 0)",
        "baseline": "record every migration up to and including this version as applied WITHOUT running it"
        " (a database that already has their changes)",
        "json": "with --dry-run: print the plan (locks, rewrites, sizes, hazards) as JSON",
    }
)
def migrate(
    c,
    prod=False,
    yes=False,
    to=None,
    dry_run=False,
    lock_timeout=None,
    allow_out_of_order=False,
    no_backup=False,
    retries=None,
    baseline=None,
    json_=False,
):
    """Apply the pending migrations, oldest first."""
    from cruddur.postgres import migrations as runner

    dry_run = is_dry(c, dry_run)
    if json_ and (not dry_run or baseline is not None):
        raise UsageError("--json goes with --dry-run, without --baseline (it prints the plan of what would run, and applies nothing)")
    lock_timeout = lock_timeout_flag(lock_timeout, MIGRATION_LOCK_TIMEOUT)
    retries = number(retries, "--retries", default=PROD_RETRIES if prod else 0, minimum=0, integer=True, maximum=MAX_RETRIES)
    if baseline is not None and (to is not None or allow_out_of_order):
        raise UsageError("--baseline records migrations without running them; give it without --to and --allow-out-of-order")
    directory, root = _folders()
    dry_run = is_dry(c, dry_run)
    target = app_database(prod, dry=dry_run)
    if not dry_run:
        finish_swap_first(target, yes)
    if baseline is not None:
        _baseline(c, target, baseline, dry_run, yes)
        return
    if dry_run or prod:
        files, applied = runner.inspect(target.url, directory, root)
        if prod:
            runner.refuse_changed_files(files, applied)
        pending = runner.plan(files, applied, to, allow_out_of_order)
        if not pending and not json_:
            nothing_to_do(c, f"nothing to do: {target} is up to date", dry_run=dry_run)
            return
        _show_plan(target, pending, dry_run, json_)
        if not pending:  # --json, nothing pending: the closing line goes to stderr, as below
            dry_run_shown(c, [], dry_run=dry_run, stream=sys.stderr)
            return
        # With --json the dry run's last word goes to stderr: stdout stays one JSON document.
        confirmed = begin(
            c,
            target,
            f"apply {len(pending)} migration(s) to",
            [],
            yes=yes,
            no_backup=no_backup,
            dry_run=dry_run,
            recover=False,
            stream=sys.stderr if json_ else None,
        )
        if not confirmed:
            return
    else:
        print(f"migrating {target}")
        _show_local_hazards(target, directory, root, to, allow_out_of_order)
    done = runner.migrate(
        target.url,
        directory,
        to=to,
        allow_out_of_order=allow_out_of_order,
        refuse_changed=prod,
        lock_timeout=lock_timeout,
        retries=retries,
        label_root=root,
        confirmed=pending if prod else None,
        on_applied=lambda step: print(f"  applied {step.version}_{step.name} ({duration(step.seconds)})", flush=True),
        on_retry=_say_retry,
    )
    if not done:
        print(f"nothing to do: {target.dbname} is up to date")
    else:
        print(f"{len(done)} applied; {target.dbname} is at version {done[-1].version}")
    if prod:
        _verify_record(target)


PROD_RETRIES = 3  # tries after a lock timeout on production: a busy table frees up within seconds
MAX_RETRIES = 20


def _say_retry(retry) -> None:
    from cruddur.postgres.sessions import held_by

    print(
        f"  {retry.version}_{retry.name}: lock timeout, the lock was held by {printable(held_by(retry.blockers))};"
        f" try {retry.attempt} of {retry.attempts} in {retry.pause:.1f}s",
        file=sys.stderr,
        flush=True,
    )


def _baseline(c, target, version: str, dry_run: bool, yes: bool) -> None:
    """db.migrate --baseline: plan, confirm on production, record, say what is now true."""
    from cruddur.postgres import migrations as runner

    directory, root = _folders()
    files, applied = runner.inspect(target.url, directory, root)
    chosen = runner.baseline_plan(files, applied, version)
    if not chosen:
        nothing_to_do(c, f"nothing to do: every migration up to {version} is recorded on {target}", dry_run=dry_run)
        return
    print(f"{'would record' if dry_run else 'will record'} {len(chosen)} migration(s) as applied on {target}, without running them:")
    _list(chosen)
    if not confirm(c, target, f"record {len(chosen)} migration(s) as applied on", yes, dry_run):
        return
    recorded = runner.baseline(target.url, directory, version, label_root=root, confirmed=chosen)
    print(f"recorded {len(recorded)} migration(s); {target.dbname} is at version {version}; inv db.migrations shows them all")


@task(
    help={
        "prod": PROD_HELP,
        "yes": YES_HELP,
        "steps": "how many of the newest applied migrations to undo (default 1)",
        "to": "undo every applied migration newer than this version (it stays applied)",
        "lock_timeout": LOCK_HELP,
        "no_backup": NO_BACKUP_HELP,
        "dry_run": DRY_RUN_HELP,
    }
)
def rollback(c, prod=False, yes=False, steps=None, to=None, lock_timeout=None, no_backup=False, dry_run=False):
    """Undo the newest applied migrations (default one)."""
    from cruddur.postgres import migrations as runner

    if steps is not None and to is not None:
        raise UsageError("give --steps or --to, not both")
    steps = number(steps, "--steps", default=1, minimum=1, integer=True)
    lock_timeout = lock_timeout_flag(lock_timeout, MIGRATION_LOCK_TIMEOUT)
    directory, root = _folders()
    dry = is_dry(c, dry_run)
    target = app_database(prod, dry=dry)
    if not dry:
        finish_swap_first(target, yes)
    files, applied = runner.inspect(target.url, directory, root)
    chosen = runner.rollback_plan(files, applied, steps, to)
    if not chosen:
        nothing_to_do(c, f"nothing to do: no migration to roll back on {target}", dry_run=dry)
        return
    print(f"{'would roll back' if dry else 'will roll back' if prod else 'rolling back'} {len(chosen)} migration(s) on {target}:")
    if prod or dry:
        _list(chosen)
    if not begin(c, target, f"roll back {len(chosen)} migration(s) of", [], yes=yes, no_backup=no_backup, dry_run=dry, recover=False):
        return
    runner.rollback(
        target.url,
        directory,
        steps=steps,
        to=to,
        lock_timeout=lock_timeout,
        label_root=root,
        confirmed=chosen if prod else None,
        on_rolled_back=lambda step: print(f"  rolled back {step.version}_{step.name} ({duration(step.seconds)})", flush=True),
    )
    if prod:
        _verify_record(target)


def _verify_record(target) -> None:
    """After a write on production: the migrations' record read back, counted by state."""
    from collections import Counter

    from cruddur.postgres import migrations as runner

    directory, root = _folders()
    rows = runner.overview(target.url, directory, root).rows
    applied = [row.version for row in rows if row.state == runner.APPLIED]
    counts = ", ".join(f"{count} {state}" for state, count in sorted(Counter(row.state for row in rows).items()))
    print(f"now {target.dbname} is at version {applied[-1] if applied else 'none'}: {counts or 'no migrations'}")


def _show_plan(target, pending, dry_run: bool, as_json: bool) -> None:
    """The plan: each statement's locks, rewrites, sizes and hazards (and on prod the drift).
    On prod an unacknowledged hazard refuses the run here, before the question."""
    from cruddur.errors import MigrationError
    from cruddur.postgres import migration_plan

    if target.prod:
        # The two wait mostly on the server (each builds and drops a scratch database): side by side.
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=1) as pool:
            drifting = pool.submit(check_drift, target)
            plans = migration_plan.plan(target.url, pending)
            found = drifting.result()
    else:
        plans, found = migration_plan.plan(target.url, pending), None
    if as_json:
        print_json({"target": str(target), "migrations": plans, "drift": found})
        return
    print(f"{'would apply' if dry_run else 'will apply'} {len(pending)} migration(s) to {target}:")
    for plan in plans:
        _print_migration(plan)
    if found is not None:
        print_drift(target, found)
    refused = [(plan, hazard) for plan in plans for hazard in plan.refused]
    if refused and target.prod:
        rules = ", ".join(sorted({f"{hazard.rule} ({plan.label})" for plan, hazard in refused}))
        message = (
            f"{len(refused)} hazard(s) on production: {rules}; use the safe form shown, or acknowledge each in its section"
            " with a line '-- cruddur:allow RULE reason'"
        )
        if dry_run:
            print(f"db.migrate --prod would refuse: {message}")
        else:
            raise MigrationError(f"refused: {message}; nothing was applied")


def _show_local_hazards(target, directory, root, to, allow_out_of_order) -> None:
    """A local run: the hazards of what it is about to apply, shown and not refused. A plan that
    cannot be made (no right to create a scratch database, say) is said in one line and the run
    goes on; a migration the plan finds failing is left to the run, which says why in its own words."""
    from cruddur.errors import CruddurError, DatabaseError, MigrationError
    from cruddur.postgres import migration_plan
    from cruddur.postgres import migrations as runner

    try:
        files, applied = runner.inspect(target.url, directory, root)
        pending = runner.plan(files, applied, to, allow_out_of_order)
    except CruddurError:
        return  # the run itself reads the same and says what is wrong
    try:
        plans = migration_plan.plan(target.url, pending)
    except MigrationError:
        return
    except DatabaseError as e:
        print(f"no plan of locks and hazards: {e}", file=sys.stderr)
        return
    for plan in plans:
        for statement in plan.statements:
            for hazard in statement.hazards:
                _print_hazard(f"{plan.label}:{statement.line}", hazard)


def _print_migration(plan) -> None:
    print(f"  {plan.version}_{plan.name}{'' if plan.transaction else ' (transaction:false)'}")
    for statement in plan.statements:
        print(f"    line {statement.line}: {_first_line(statement.sql)}")
        # Relation names are other people's text: escaped for the terminal.
        locks = ", ".join(f"{lock.relation} {lock.mode}" for lock in statement.locks) or "none on existing tables"
        print(printable(f"      locks: {locks}" + (f"; rewrites: {', '.join(statement.rewrites)}" if statement.rewrites else "")))
        if not statement.traced.startswith("in the migration"):
            print(f"      traced {statement.traced}")
        for size in statement.sizes:
            rows = "rows unknown (never analyzed)" if size.rows is None else f"~{size.rows:,} rows"
            print(printable(f"      {size.relation}: {rows}, {byte_size(size.bytes)}"))
        for hazard in statement.hazards:
            _print_hazard("", hazard)


def _print_hazard(where: str, hazard) -> None:
    place = f" in {where}" if where else ""
    if hazard.allowed is not None:
        print(printable(f"      allowed {hazard.rule}{place} ({hazard.allowed}): {hazard.message}"))
        return
    print(printable(f"      HAZARD {hazard.rule}{place}: {hazard.message}"))
    print(f"        instead: {hazard.instead}")


def _first_line(text: str, width: int = 70) -> str:
    line = text.splitlines()[0] if text else ""
    shown = line if len(line) <= width and "\n" not in text else line[: width - 3].rstrip() + "..."
    return printable(shown)


def check_drift(target):
    from cruddur.postgres import drift

    return drift.check(target.url, (settings().sql_dir / "schema.sql", "sql/schema.sql"), _folders()[0])


def print_drift(target, found) -> None:
    if not found.differences:
        print(f"drift: none ({target.dbname} matches sql/schema.sql plus its applied migrations)")
    else:
        print(f"drift: {len(found.differences)} difference(s) between {target.dbname} and sql/schema.sql plus its applied migrations:")
        for difference in found.differences:
            print(f"  {printable(difference)}")
    for note in found.notes:
        print(f"  note: {printable(note)}")


def _list(plan) -> None:
    for migration in plan:
        print(f"  {migration.version}_{migration.name}")


@task(
    help={
        "prod": PROD_HELP,
        "json": JSON_HELP,
        "check": "exit 1 when a migration is pending, interrupted or an applied file changed (for CI and start-up scripts)",
        "accept": "record this version's file, as it is now, as applied (an edited file, or an interrupted run finished by hand)",
        "forget": "delete this version's record so the next inv db.migrate runs it again (after undoing it by hand)",
        "yes": YES_HELP,
    }
)
def migrations(c, prod=False, json_=False, check=False, accept=None, forget=None, yes=False):
    """Show each migration's state and the next step; --accept/--forget fix a record."""
    from cruddur.postgres import migrations as runner

    directory, root = _folders()
    if accept is not None or forget is not None:
        if json_ or check:
            raise UsageError("--accept and --forget change a record and show nothing; give them without --json and --check")
        _fix_record(c, prod, yes, accept, forget)
        return
    target = app_database(prod)
    found = runner.overview(target.url, directory, root)
    rows = found.rows
    if json_:
        print_json(rows)
    else:
        if sys.stdout.isatty():
            show(_table(rows, target))
        else:
            _print_plain(rows)
        for line in next_steps(found, prod):
            print(printable(line))
    if check:
        wrong = [row for row in rows if row.state in (runner.PENDING, runner.CHANGED, runner.INTERRUPTED)]
        if wrong:
            states = sorted({row.state for row in wrong})
            raise CheckFailed(f"{len(wrong)} migration(s) {' or '.join(states)} on {target}")


def _fix_record(c, prod: bool, yes: bool, accept: str | None, forget: str | None) -> None:
    """db.migrations --accept/--forget: one version's record, guarded on production."""
    from cruddur.postgres import migrations as runner

    if accept is not None and forget is not None:
        raise UsageError("give --accept or --forget, not both")
    directory, root = _folders()
    target = app_database(prod, dry=is_dry(c))
    version = accept if accept is not None else forget
    change = runner.accept if accept is not None else runner.forget
    # Refused here, before any question, as the write would be.
    planned = change(target.url, directory, version, root, dry=True)
    question = f"record migration {version} as applied" if accept is not None else f"forget migration {version}'s record"
    plan = [f"{'would' if is_dry(c) else 'will'} {planned} on {target}"]
    if not begin(c, target, f"{question} in the migrations' record of", plan, yes=yes, backup=False):
        return
    print(f"{change(target.url, directory, version, root)} on {target}")


def next_steps(found, prod: bool) -> list[str]:
    """What to do next, for every state shown (commands for the target in use)."""
    from cruddur.postgres import migrations as runner

    flag = " --prod" if prod else ""
    fix = f"inv db.migrations{flag}"
    rows = found.rows
    lines = []
    for row in rows:
        if row.state == runner.INTERRUPTED:
            lines += _interrupted_steps(row, fix, flag)
        elif row.state == runner.RUNNING:
            lines.append(f"{row.version}: {row.detail} (another inv db.migrate); wait for it to end")
        elif row.state == runner.CHANGED:
            lines.append(
                f"{row.version}: its file changed after it was applied. Restore the file as it was (git checkout), or keep the"
                f" edit as what was applied: {fix} --accept {row.version}; or undo it by hand, then {fix} --forget {row.version}"
                f" and inv db.migrate{flag} runs the edited file"
            )
        elif row.state == runner.MISSING:
            lines.append(
                f"{row.version}: applied, but its file is gone. Restore the file (git log -- sql/migrations), or if its change"
                f" was undone by hand: {fix} --forget {row.version}"
            )
    pending = [row for row in rows if row.state == runner.PENDING]
    if found.legacy_last_run is not None and pending:
        lines.append(
            f"found public.schema_information (the bootcamp's migration scripts; last_successful_run {found.legacy_last_run!r}):"
            " migrations those scripts ran are not in schema_migrations. If this database already has the changes of the"
            f" migrations up to VERSION, record them without running them: inv db.migrate{flag} --baseline VERSION"
            f" (the newest pending is {pending[-1].version})"
        )
    if pending:
        lines.append(f"next: inv db.migrate{flag} applies the {len(pending)} pending migration(s)")
    elif not lines:
        lines.append("nothing to do: every migration is applied" if rows else "no migrations yet: inv db.new-migration NAME writes one")
    return lines


def _interrupted_steps(row, fix: str, flag: str) -> list[str]:
    # The indexes are named once, in the first line; the steps say what to do with them.
    drops = " DROP INDEX CONCURRENTLY on each INVALID index named above" if row.invalid_indexes else ""
    left = f"; it left the INVALID index(es) {', '.join(row.invalid_indexes)}" if row.invalid_indexes else ""
    lines = [f"{row.version}: interrupted, outside a transaction: {row.detail}{left}."]
    if row.direction == "up":
        lines.append(
            f"  to undo it: run{drops} and undo what its earlier statements made (inv db.connect{flag}), then {fix} --forget"
            f" {row.version}, and inv db.migrate{flag} runs it again"
        )
        lines.append(f"  to finish it instead: run the rest of its up section by hand, then {fix} --accept {row.version}")
    else:
        lines.append(f"  to finish the rollback: run{drops} and the rest of its down section by hand, then {fix} --forget {row.version}")
        lines.append(f"  to keep it applied instead: redo what its down section undid, then {fix} --accept {row.version}")
    return lines


_COLUMNS = ("version", "name", "state", "applied at")


def _cells(row) -> tuple[str, ...]:
    return row.version, row.name, row.state, moment(row.applied_at)


def _print_plain(rows) -> None:
    """The same columns as the table, as plain text: for pipes and scripts (and fast with a
    thousand migrations)."""
    cells = [_COLUMNS, *(_cells(row) for row in rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(_COLUMNS) - 1)]
    print("\n".join("  ".join([*(text.ljust(w) for text, w in zip(line, widths)), line[-1]]).rstrip() for line in cells))


def _table(rows, target):
    from rich.table import Table

    table = Table(caption=f"{len(rows)} migration(s) on {target}", caption_justify="left")
    for column in _COLUMNS:
        table.add_column(column, no_wrap=column != "name", overflow="ellipsis")
    for row in rows:
        table.add_row(*_cells(row))
    return table


@task(help={"prod": PROD_HELP, "output": "write here instead of backups/<db>-<UTC time>.dump"})
def dump(c, prod=False, output=None):
    """Back up the app database to a pg_dump file and print its path."""
    from cruddur.postgres import dump as backups

    target = app_database(prod, dry=is_dry(c))
    path = Path(output) if output else backups.default_path(settings().backups_dir, target.dbname)
    if dry_run_shown(c, [f"would dump {target} to {path}"]):
        return
    with progress_line(f"dumping {target.dbname}") as report:
        size = backups.dump(target.url, path, report)
    print(f"dumped {target} to {path} ({byte_size(size)})")


@task(
    help={
        "prod": PROD_HELP,
        "yes": YES_HELP,
        "no_backup": NO_BACKUP_HELP,
        "file": "the .dump file to restore (from inv db.dump); also the first argument",
    }
)
def restore(c, file, prod=False, yes=False, no_backup=False):
    """Replace the app database with a dump (swapped in whole)."""
    from cruddur.postgres import dump as backups

    backups.check_dump(Path(file))  # a wrong path is one line before the plan, the question and the backup
    target = app_database(prod, recover=False, dry=is_dry(c))  # the restore finishes an interrupted swap itself
    plan = [f"will replace {target} with {file}; its tables now:", *table_lines(target.url)]
    if not begin(c, target, f"restore {file} over", plan, yes=yes, no_backup=no_backup, recover=False):
        return
    print(f"restoring {file} into {target}")
    with progress_line(f"restoring {target.dbname}") as report:
        existed = backups.restore(target.url, Path(file), report)
    print(f"  {'replaced' if existed else 'created'} {target.dbname} from {file}")
    if target.prod:
        verify(target)
