"""Errors a user can cause, and the text helpers that keep their messages safe to print.

Each error's message is a single line with no password in it. The Lambda handler keeps its own
copy of `hide_quoted` (it ships alone); a test proves the two behave the same.
"""

from __future__ import annotations

import re

MASK = "****"


def one_line(text: object) -> str:
    """Any text, or an exception's message, with its whitespace folded onto one line."""
    return " ".join(str(text).split())


# libpq's own quoted punctuation, kept: a password can only appear inside the quotes of a value.
LIBPQ_QUOTED_WORDS = ('separator "="', 'missing "="', 'matching "]"', '(expected ":" or "/")')


def hide_quoted(text: str) -> str:
    """The text with the stretch from its first quote to its last shown as "...".

    libpq (and others) quote the piece of a malformed URL they choke on, which may be the
    password. A password may itself hold quotes, so quoted parts cannot be told apart from the
    text between them: all of it goes. libpq's own quoted punctuation (`missing "="`) stays."""
    for index, words in enumerate(LIBPQ_QUOTED_WORDS):
        text = text.replace(words, f"\0{index}\0")
    quotes = [at for at, char in enumerate(text) if char in "\"'"]
    if quotes:
        text = f'{text[: quotes[0]]}"..."{text[quotes[-1] + 1 :]}'
    for index, words in enumerate(LIBPQ_QUOTED_WORDS):
        text = text.replace(f"\0{index}\0", words)
    return text


def scrub(text: str, secrets: dict[str, str], standalone: bool = False) -> str:
    """The text with each secret (longest first) replaced by what stands for it.

    standalone: only where the secret is not part of a longer word (as in a URL, a conninfo or
    quotes a tool echoes), so a short one ("d") leaves the tool's own words ("pg_dump") alone."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        if standalone:
            text = re.sub(rf"(?<!\w){re.escape(secret)}(?!\w)", lambda _, shown=secrets[secret]: shown, text)
        else:
            text = text.replace(secret, secrets[secret])
    return text


class CruddurError(Exception):
    """A failure the user can fix; the CLI shows its message and exits non-zero."""


class UsageError(CruddurError):
    """A flag or argument that cannot be used as given."""


class CheckFailed(CruddurError):
    """A check the user asked for (e.g. --check) found something to fix."""


class ConfigError(CruddurError):
    """A setting is missing or malformed."""


class MissingSetting(ConfigError):
    def __init__(self, variable: str, how_to_set: str, empty: bool = False):
        """`how_to_set`: the line that sets it, for the workspace in use (config.Workspace says it);
        `empty`: the variable is set, to nothing (the command in a `$(...)` that set it failed, say)."""
        self.variable = variable
        state = "set but empty (did the command that set it fail?)" if empty else "not set"
        super().__init__(f"{variable} is {state}: {how_to_set}")


class DatabaseError(CruddurError):
    """The database refused, or could not be reached."""


class NoSuchDatabase(DatabaseError):
    """The server answered: the database does not exist."""


class ServerNotAnswering(DatabaseError):
    """The server took the connection and did not answer within the connect timeout: any other
    connection to it would wait as long, so a task stops at the first."""


class SqlFileError(DatabaseError):
    """A .sql file failed; nothing of it was applied."""


class UnterminatedSql(SqlFileError):
    """A quote, dollar quote or block comment in a .sql file that never ends."""


class DatabaseUnavailable(DatabaseError):
    """No connection could be made, or none was free, within the time allowed."""


class ClientClosed(DatabaseError):
    """The client was used before open() or after close()."""


class QueryError(DatabaseError):
    """Postgres refused a statement; `sqlstate` is its five-character SQLSTATE code."""

    def __init__(self, message: str, sqlstate: str | None):
        self.sqlstate = sqlstate
        super().__init__(message)


class QueryTimeout(QueryError):
    """A statement ran into one of the client's time bounds and was cancelled; nothing of it
    was committed."""


class LockTimeout(QueryTimeout):
    """A statement waited the client's `lock_timeout` for a lock another session holds (SQLSTATE 55P03)."""


class StatementTimeout(QueryTimeout):
    """A statement ran past the client's `statement_timeout`, or was cancelled (SQLSTATE 57014)."""


class TemplateNotFound(DatabaseError):
    """No SQL template <group>/<name>.sql for the template asked for."""


class FileLockTimeout(SqlFileError):
    """A statement of a file (a migration, schema or seed) gave up waiting for a lock another session held (lock_timeout).
    `blockers`: who held it, as far as the wait saw; `left_nothing`: the file's statements left no
    trace, so running it again later is safe."""

    def __init__(self, message: str, blockers: list | None = None, left_nothing: bool = True):
        super().__init__(message)
        self.blockers = blockers or []
        self.left_nothing = left_nothing


class SwapError(DatabaseError):
    """An interrupted swap left copies that recovery cannot put together without perhaps losing
    one; every copy was kept. settled_by_drop: dropping the app database settles it."""

    def __init__(self, message: str, settled_by_drop: bool = False):
        super().__init__(message)
        self.settled_by_drop = settled_by_drop


class MigrationError(DatabaseError):
    """A migration file is malformed, or the plan is refused (out of order, changed file, ...)."""


class ChildTimedOut(CruddurError):
    """A program the tool ran (pg_dump, pip, ...) was still running at its time limit: it was killed."""


class AwsError(CruddurError):
    """AWS answered with an error, or could not be reached."""

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        self.code = code  # AWS's error code, when AWS answered with one


class IpLookupError(CruddurError):
    """No usable public IPv4 address."""


class PackageError(CruddurError):
    """The Lambda zip could not be built (pip failed, bad runtime, over Lambda's limits)."""


class EventError(CruddurError):
    """The sample Lambda event cannot be read, or lacks what the handler needs."""


class StatementFailed(Exception):
    """Not for users: the runners turn it into a SqlFileError naming the file and line.

    A statement (or one of the runner's own queries, statement None) failed; the transaction,
    if there was one, was rolled back. `transaction`: which of run_transactions' transactions
    failed (those before it committed), `committed`: their `after` queries' cursors."""

    def __init__(self, statement, error, transaction: int = 0, committed=()):
        super().__init__(one_line(error))
        self.statement, self.error = statement, error
        self.transaction, self.committed = transaction, list(committed)
