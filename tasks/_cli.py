"""What every collection shares: the task decorator, the settings, the app database, numeric flags,
rich output and --json, sizes for people, the prod guard."""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import re
import sys
from pathlib import Path

import invoke
from invoke.exceptions import Exit

from cruddur.config import Settings
from cruddur.errors import CruddurError, ServerNotAnswering, UsageError

PROD_HELP = "use PROD_CONNECTION_URL (the RDS database) instead of CONNECTION_URL"
JSON_HELP = "print JSON instead of a table (for scripts)"
YES_HELP = "with --prod: confirm without typing the database name (for scripts)"


class _Task(invoke.Task):
    """A task whose flags never take -h as their short form (-h stays help everywhere), and where
    -p is --prod or nothing: `-p` given to any task never means another flag."""

    def arg_opts(self, name, default, taken_names):
        reserved = {"h"} if name == "prod" else {"h", "p"}
        return super().arg_opts(name, default, taken_names | reserved)


# The exit code of a process that wrote into a closed pipe, as a shell reports one that SIGPIPE
# ended (`inv db.sessions | head -1` under `set -o pipefail`).
BROKEN_PIPE_EXIT = 141


def task(**options):
    """invoke.task, plus: a CruddurError becomes one line on stderr and exit code 1, Ctrl-C the
    line "interrupted" and exit code 130, a reader that closed the pipe (`| head -1`) a quiet
    exit; what the library says about a long wait (the `cruddur.waits` logger) goes to stderr;
    the db commands an error suggests get --prod when the task ran with it (for_target);
    and -h is always help."""

    def decorate(body):
        @functools.wraps(body)
        def run(c, *args, **kwargs):
            with _waits_on_stderr():
                try:
                    result = body(c, *args, **kwargs)
                except CruddurError as e:
                    _flush_stdout()
                    raise Exit(f"error: {for_target(str(e), bool(kwargs.get('prod')))}", code=1) from None
                except KeyboardInterrupt:
                    _flush_stdout()
                    raise Exit("interrupted", code=130) from None
                except BrokenPipeError:
                    _discard_stdout()
                    raise Exit(code=BROKEN_PIPE_EXIT) from None
                except Exit:
                    _flush_stdout()  # the task's own refusal, printed after what it wrote
                    raise
                if not _flush_stdout():
                    raise Exit(code=BROKEN_PIPE_EXIT)
                return result

        return invoke.task(klass=_Task, **options)(run)

    return decorate


# A db command that a library error suggests (inv db.create, inv db.kill...): the library does
# not know which database the task uses, and on production the command needs --prod too.
_DB_COMMAND = re.compile(r"\binv (db\.[a-z][a-z-]*)(?![a-z-])(?! --prod)")


def for_target(message: str, prod: bool) -> str:
    """The message with each db command it suggests made to act on production when `prod`."""
    return _DB_COMMAND.sub(r"inv \1 --prod", message) if prod else message


def quiet_broken_pipes() -> None:
    """Outside the tasks too (`inv --list | head -3`: Invoke's own printing), a closed stdout
    pipe ends `inv` quietly with BROKEN_PIPE_EXIT instead of a traceback; any other uncaught
    exception is shown as before."""
    shown = sys.excepthook

    def hook(kind, value, traceback):
        if not issubclass(kind, BrokenPipeError):
            shown(kind, value, traceback)
            return
        _discard_stdout()
        sys.stderr.flush()
        os._exit(BROKEN_PIPE_EXIT)  # at the top level already: nothing is left to unwind

    sys.excepthook = hook


def _flush_stdout() -> bool:
    """Flush stdout here, where a closed pipe can still be caught (not at exit, where Python
    would print a traceback-like complaint); whether the reader took it all."""
    try:
        sys.stdout.flush()
        return True
    except BrokenPipeError:
        _discard_stdout()
        return False


def _discard_stdout() -> None:
    """Point stdout at /dev/null: the reader is gone, and what is still buffered would fail again
    when Python flushes it at exit (a traceback about the closed pipe)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass  # no file descriptor behind stdout (captured): nothing to flush at exit
    finally:
        os.close(devnull)


class _StderrLines(logging.Handler):
    """Each record as one line on the stderr of the moment, its text made safe for a terminal
    (it names other sessions' application names)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(printable(record.getMessage()), file=sys.stderr, flush=True)
        except Exception:
            self.handleError(record)


@contextlib.contextmanager
def _waits_on_stderr():
    from cruddur.waits import waits_log

    handler = _StderrLines()
    waits_log.addHandler(handler)
    try:
        yield
    finally:
        waits_log.removeHandler(handler)


def number(value, flag: str, default: float, minimum: float = 0, integer: bool = False, maximum: float | None = None):
    """A numeric flag's value, or UsageError (one clear line, from the task decorator);
    `maximum`: the largest the flag accepts.

    Numeric flags are declared with default None: invoke converts a typed default itself, before
    the task runs, and a bad value would end in its traceback."""
    if value is None:
        return default
    try:
        parsed = int(value) if integer else float(value)
    except ValueError:
        raise UsageError(f"{flag} takes a {'whole ' if integer else ''}number, not {value!r}") from None
    if not math.isfinite(parsed) or parsed < minimum:
        raise UsageError(f"{flag} must be a number of {minimum:g} or more, not {value!r}")
    if maximum is not None and parsed > maximum:
        raise UsageError(f"{flag} must be a number of {maximum:g} or less, not {value!r}")
    return parsed


def lock_timeout_flag(value, default: float) -> float:
    """A --lock-timeout value: seconds, at least a millisecond, at most timeouts.MAX_LOCK_TIMEOUT."""
    from cruddur.timeouts import MAX_LOCK_TIMEOUT

    return number(value, "--lock-timeout", default=default, minimum=0.001, maximum=MAX_LOCK_TIMEOUT)


def print_json(data) -> None:
    """The one way a task prints --json: dicts, lists and dataclasses (by field name), indented;
    values JSON has no type for (times, decimals) as their text."""
    import dataclasses
    import json

    def fallback(value):
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return dataclasses.asdict(value)
        return str(value)

    print(json.dumps(data, indent=2, default=fallback))


# Characters a terminal acts on rather than shows: C0/C1 controls (ESC starts colour, cursor and
# OSC sequences), line and paragraph separators, bidirectional overrides, lone surrogates (a
# non-UTF-8 byte read from argv). Joiners inside emoji are left alone.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def printable(text: object) -> str:
    """Text that other people wrote, safe for a terminal: each control character shown escaped
    (ESC as \\x1b, a newline as \\n). JSON output never goes through this: it stays exact."""
    if text is None:
        return ""
    return _UNPRINTABLE.sub(lambda found: found.group(0).encode("unicode_escape").decode("ascii"), str(text))


def on_one_line(text: str | None, width: int | None = None) -> str:
    """A query (or any text) on one line, its whitespace runs made single spaces; cut to `width`
    with "…" when given. Not escaped: pass it through printable() to show it."""
    line = " ".join((text or "").split())
    return line if width is None or len(line) <= width else line[: width - 1] + "…"


# The checkout this tasks/ folder belongs to: its sql/, .pgdata/ and backups/ are the project's.
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def settings() -> Settings:
    return Settings.from_env(project_dir=PROJECT_ROOT)


def console(stderr: bool = False):
    """A rich console: colours on a terminal, plain text when piped."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # Piped output has no width to fit (unless COLUMNS says one): wide tables beat cells cut short.
    fits = stream.isatty() or os.environ.get("COLUMNS")
    return Console(stderr=stderr, highlight=False, width=None if fits else 200)


def show(renderable, screen=None) -> None:
    """The one way a task prints a table or panel: on `screen` (a console(); stdout's by default),
    as rich draws it on a terminal; piped, as plain lines without the spaces that pad the last column."""
    screen = screen or console()
    if screen.file.isatty():
        screen.print(renderable)
        return
    with screen.capture() as captured:
        screen.print(renderable)
    print("\n".join(line.rstrip() for line in captured.get().splitlines()), file=screen.file)


@contextlib.contextmanager
def progress_line(description: str):
    """For long work: yields report(step=None, done_bytes=None), the callback the library calls.

    On a terminal (stderr), a rich progress line: spinner, the description and current step, the
    bytes done so far, the time elapsed; it disappears when the work ends. Piped, report does
    nothing and nothing extra is printed."""
    if not sys.stderr.isatty():
        yield lambda step=None, done_bytes=None: None
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from cruddur.formats import byte_size

    columns = (SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.fields[done]}"), TimeElapsedColumn())
    with Progress(*columns, console=console(stderr=True), transient=True) as progress:
        line = progress.add_task(description, done="")

        def report(step: str | None = None, done_bytes: int | None = None) -> None:
            shown = f"{description}: {step}" if step else description
            progress.update(line, description=shown, done="" if done_bytes is None else byte_size(done_bytes))

        yield report


def confirm_destructive(action: str, expected: str, where: str, yes: bool) -> None:
    """Make the user type `expected` on a terminal (or pass --yes); refuse otherwise, changing nothing.

    The question goes to stderr and the answer is read from the terminal on stdin: stdout stays
    the task's output (a `--json > file` never holds the question)."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise Exit(f"refused: {action} on {where} needs confirmation; run it on a terminal or pass --yes", code=1)
    print(f"About to {action} on {where}.", file=sys.stderr)
    print(f"Type {expected!r} to confirm: ", end="", file=sys.stderr, flush=True)
    typed = sys.stdin.readline()
    if typed.strip() != expected:
        # What was typed is not repeated: it might be a password pasted into the wrong window.
        raise Exit(f"refused: what you typed is not {expected!r}; nothing changed", code=1)


SWAP_FOUND = (
    "{dbname}: an interrupted db.setup or db.restore left a swap half done; it is left alone here."
    " A write task on --prod (inv db.migrate --prod, say) finishes it after you confirm"
)


def app_database(prod: bool, recover: bool = True, dry: bool = False):
    """The database a db task acts on (cruddur.postgres.target decides). With recover, a swap
    that an interrupted db.setup or db.restore left half done is finished or undone first, so
    no task ever finds the app database missing because of it; a recovery that fails stops the
    task in one line. Never on production or in a dry run: there renaming and dropping
    databases waits for the write's confirmation, and this only says so."""
    from cruddur.postgres import admin
    from cruddur.postgres.target import resolve

    target = resolve(settings(), prod)
    if target.started_server:
        print(
            f"started the local PostgreSQL (data in {settings().pgdata}); it keeps running after this task. Stop it with: inv db.down",
            file=sys.stderr,
        )
    if recover and not target.prod and not dry:
        recover_swap(target)
    elif recover:
        try:
            found = admin.interrupted_swap(target.url)
        except ServerNotAnswering:
            raise  # the task's own connection would wait as long again
        except CruddurError:
            found = False  # the task's own connection reports what is wrong, with the app database's name
        if found:
            print(SWAP_FOUND.format(dbname=target.dbname), file=sys.stderr)
    return target


def finish_swap_first(target, yes: bool) -> None:
    """For a prod write task that reads the database before it asks: an interrupted swap is
    finished first, after its own confirmation (the app database may be missing until then)."""
    from cruddur.postgres import admin

    if target.prod and admin.interrupted_swap(target.url):
        confirm_destructive(f"finish the interrupted swap of database {target.dbname!r}", target.dbname, str(target), yes)
        recover_swap(target)


def recover_swap(target) -> None:
    """Finish or undo a swap an interrupted db.setup or db.restore left half done, saying on
    stderr what was done. A recovery that fails (or finds copies that do not fit together, all
    kept) raises its one-line error: the task stops there."""
    from cruddur.postgres import admin

    done = admin.recover_swap(target.url)
    if done:
        print(f"{target.dbname}: {done}", file=sys.stderr)
