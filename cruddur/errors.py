"""Errors a user can cause. Each one's message is a single line, safe to print (no password)."""


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


class AwsError(CruddurError):
    """AWS answered with an error, or could not be reached."""

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        self.code = code  # AWS's error code, when AWS answered with one
