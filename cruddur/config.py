"""One Settings object, resolved from the environment variables users already have.

Nothing else in the library reads the project's variables from os.environ. (Child processes such
as psql inherit the environment; the Lambda handler reads its own CONNECTION_URL, as it ships alone;
the swap's test hook reads CRUDDUR_TEST_KILL_AT_SWAP_STEP.)
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import Enum
from pathlib import Path

from .errors import ConfigError, MissingSetting

DEFAULT_IP_LOOKUP_URLS = (
    "https://checkip.amazonaws.com",
    "https://api.ipify.org",
    "https://ifconfig.me/ip",
)


class Workspace(Enum):
    """Where the tool runs, which decides how a user keeps a setting across restarts."""

    GITPOD = "gitpod"  # the gp command exists (Gitpod's own `gp env` keeps variables)
    CODESPACES = "codespaces"  # GitHub sets CODESPACES=true; Codespaces secrets keep variables
    SHELL = "shell"  # anywhere else: the shell profile or an .env file

    @classmethod
    def detect(cls, environ: Mapping[str, str]) -> Workspace:
        # An absent PATH means no PATH (shutil.which would fall back to os.environ's own).
        if shutil.which("gp", path=environ.get("PATH", "")):
            return cls.GITPOD
        if environ.get("CODESPACES") == "true":
            return cls.CODESPACES
        return cls.SHELL

    def keep_line(self, variable: str, value: str) -> str | None:
        """The command that keeps `variable` (a value that is no secret) for every later workspace
        of this kind; None in a plain shell."""
        if self is Workspace.GITPOD:
            return f"gp env {variable}={value}"
        if self is Workspace.CODESPACES:
            return f"gh secret set {variable} --user --body {value}"
        return None

    def keep_secret_line(self, variable: str, command: str) -> str | None:
        """How to keep `variable` whose secret value `command` prints, without the secret ever
        on a command line (`ps` shows those to every local user); None in a plain shell."""
        if self is Workspace.GITPOD:
            # gp env takes the value as an argument only: paste it into the settings page instead.
            return f"run {command} and paste its output as {variable} in Gitpod's user settings, Variables"
        if self is Workspace.CODESPACES:
            return f"{command} | gh secret set {variable} --user  (gh reads the value from stdin)"
        return None

    def how_to_set(self, variable: str, example: str = "...", secret: bool = False) -> str:
        """The line that sets `variable` now, and how to keep it in this kind of workspace (a
        secret through a pipe, from the variable just set)."""
        line = f"export {variable}={example}"
        keep = self.keep_secret_line(variable, f"printenv {variable}") if secret else self.keep_line(variable, example)
        if keep is None:
            return line
        if self is Workspace.CODESPACES:
            keep += ", or add it in GitHub > Settings > Codespaces"
        return f"{line} (to keep it: {keep})"


def _env(name: str, example: str = "...", **kwargs):
    return field(metadata={"env": name, "example": example}, **kwargs)


@dataclass(frozen=True)
class Settings:
    # Secrets stay out of repr(): a Settings in a traceback must not leak them.
    connection_url: str | None = _env("CONNECTION_URL", "postgresql://postgres:password@localhost:5432/cruddur", default=None, repr=False)
    # The tool's own line (rds.url reads RDS_MASTER_PASSWORD), not an example to edit by hand.
    prod_connection_url: str | None = _env("PROD_CONNECTION_URL", '"$(inv rds.url --show-password)"', default=None, repr=False)
    db_sg_id: str | None = _env("DB_SG_ID", "sg-0123456789abcdef0", default=None)
    db_sg_rule_id: str | None = _env("DB_SG_RULE_ID", "sgr-0123456789abcdef0", default=None)
    gitpod_ip: str | None = _env("GITPOD_IP", "203.0.113.7", default=None)
    ip_lookup_urls: tuple[str, ...] = _env("IP_LOOKUP_URLS", "https://checkip.amazonaws.com", default=DEFAULT_IP_LOOKUP_URLS)
    rds_master_password: str | None = _env("RDS_MASTER_PASSWORD", "'your-own-password'", default=None, repr=False)
    aws_cognito_user_pool_id: str | None = _env("AWS_COGNITO_USER_POOL_ID", "us-east-1_AbCdEfGhI", default=None)
    lambda_role_arn: str | None = _env("LAMBDA_ROLE_ARN", "arn:aws:iam::123456789012:role/cruddur-post-confirmation", default=None)
    # The project's folder (its sql/, .pgdata/, backups/): the tasks pass their checkout; the
    # library never guesses it from where it is installed.
    project_dir: Path = field(default_factory=Path.cwd)
    pgdata: Path = _env("CRUDDUR_PGDATA", "/path/to/pgdata", default=None)  # default: <project_dir>/.pgdata
    # Kept as typed: only the tasks that start the embedded server check it (see local_port).
    pgport: str = _env("CRUDDUR_PGPORT", "5433", default="5432")
    sql_dir: Path = None  # default: <project_dir>/sql (schema.sql, seed.sql, migrations/)
    workspace: Workspace = Workspace.SHELL
    # Variables that are set but hold nothing (a `$(...)` whose command failed): each counts as
    # unset, and an error about one says it is empty.
    empty: frozenset[str] = frozenset()

    def __post_init__(self):
        if self.pgdata is None:
            object.__setattr__(self, "pgdata", self.project_dir / ".pgdata")
        if self.sql_dir is None:
            object.__setattr__(self, "sql_dir", self.project_dir / "sql")

    @property
    def backups_dir(self) -> Path:
        return self.project_dir / "backups"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, project_dir: Path | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        values = {} if project_dir is None else {"project_dir": Path(project_dir)}
        empty = set()
        for f in fields(cls):
            name = f.metadata.get("env")
            raw = (environ.get(name) or "").strip() if name else ""
            if not raw:
                if name and name in environ:
                    empty.add(name)
                continue
            if f.name == "ip_lookup_urls":
                values[f.name] = tuple(u.strip() for u in raw.split(",") if u.strip())
            elif f.name == "pgdata":
                values[f.name] = Path(raw).expanduser().resolve()
            else:
                values[f.name] = raw
        return cls(**values, workspace=Workspace.detect(environ), empty=frozenset(empty))

    def local_port(self) -> int:
        """The embedded server's TCP port (CRUDDUR_PGPORT), or ConfigError naming the variable."""
        if self.pgport.isascii() and self.pgport.isdigit() and 0 < int(self.pgport) < 65536:
            return int(self.pgport)
        raise ConfigError(f"CRUDDUR_PGPORT must be a TCP port number (1-65535), not {self.pgport!r}")

    @classmethod
    def variables(cls) -> frozenset[str]:
        """The names of the environment variables the settings are read from."""
        return frozenset(f.metadata["env"] for f in fields(cls) if "env" in f.metadata)

    def require(self, attribute: str) -> str:
        """The setting's value, or MissingSetting naming its variable and how to set it."""
        value = getattr(self, attribute)
        if value:
            return value
        found = next(f for f in fields(self) if f.name == attribute)
        meta = found.metadata
        # The secrets are the settings kept out of repr().
        how = self.workspace.how_to_set(meta["env"], meta["example"], secret=not found.repr)
        raise MissingSetting(meta["env"], how, empty=meta["env"] in self.empty)
