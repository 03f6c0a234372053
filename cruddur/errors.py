"""Errors a user can cause, and the text helpers that keep their messages safe to print.

Each error's message is a single line with no password in it. The Lambda handler keeps its own
copy of `hide_quoted` (it ships alone); a test proves the two behave the same.
"""

from __future__ import annotations

import re

MASK = "****"

_QUOTED = re.compile(r""""[^"]*"|'[^']*'""")


def one_line(text: object) -> str:
    """Any text, or an exception's message, with its whitespace folded onto one line."""
    return " ".join(str(text).split())


def hide_quoted(text: str) -> str:
    """The text with every quoted part that holds a letter or digit shown as "...".

    libpq (and others) quote the piece of a malformed URL they choke on, which may be the
    password; quoted punctuation such as "=" stays, since it tells the user what went wrong."""
    return _QUOTED.sub(lambda quoted: '"..."' if re.search(r"\w", quoted.group(0)) else quoted.group(0), text)


def scrub(text: str, secrets: dict[str, str]) -> str:
    """The text with each secret (longest first) replaced by what stands for it."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, secrets[secret])
    return text


class CruddurError(Exception):
    """A failure the user can fix; the CLI shows its message and exits non-zero."""


class ConfigError(CruddurError):
    """A setting is missing or malformed."""


class MissingSetting(ConfigError):
    def __init__(self, variable: str, example: str = "..."):
        self.variable = variable
        super().__init__(
            f"{variable} is not set: export {variable}={example}"
            f" (in Gitpod, also gp env {variable}={example})"
        )


class DatabaseError(CruddurError):
    """The database refused, or could not be reached."""


class SqlFileError(DatabaseError):
    """A .sql file failed; nothing of it was applied."""


class MigrationError(CruddurError):
    """A migration file is malformed, or the plan is refused (out of order, changed file, ...)."""


class AwsError(CruddurError):
    """AWS answered with an error, or could not be reached."""

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        self.code = code  # AWS's error code, when AWS answered with one
