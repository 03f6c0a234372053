"""One Settings object, resolved from the environment variables users already have.

Nothing else in the library reads the project's variables from os.environ. (Child processes such
as psql inherit the environment; the Lambda handler reads its own CONNECTION_URL, as it ships alone.)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Mapping

from .errors import MissingSetting

# The library is installed editable from the repository, so the project's files sit beside it.
PROJECT_ROOT = Path(__file__).resolve().parent.parent

DEFAULT_IP_LOOKUP_URLS = (
    "https://checkip.amazonaws.com",
    "https://api.ipify.org",
    "https://ifconfig.me/ip",
)


def _env(name: str, example: str = "...", **kwargs):
    return field(metadata={"env": name, "example": example}, **kwargs)


@dataclass(frozen=True)
class Settings:
    # Secrets stay out of repr(): a Settings in a traceback must not leak them.
    connection_url: str | None = _env(
        "CONNECTION_URL", "postgresql://postgres:password@localhost:5432/cruddur", default=None, repr=False
    )
    prod_connection_url: str | None = _env(
        "PROD_CONNECTION_URL", "postgresql://cruddurroot:PASSWORD@ENDPOINT:5432/cruddur", default=None, repr=False
    )
    db_sg_id: str | None = _env("DB_SG_ID", "sg-0123456789abcdef0", default=None)
    db_sg_rule_id: str | None = _env("DB_SG_RULE_ID", "sgr-0123456789abcdef0", default=None)
    gitpod_ip: str | None = _env("GITPOD_IP", "203.0.113.7", default=None)
    ip_lookup_urls: tuple[str, ...] = _env(
        "IP_LOOKUP_URLS", "https://checkip.amazonaws.com", default=DEFAULT_IP_LOOKUP_URLS
    )
    rds_master_password: str | None = _env("RDS_MASTER_PASSWORD", "'a long secret'", default=None, repr=False)
    aws_cognito_user_pool_id: str | None = _env("AWS_COGNITO_USER_POOL_ID", "us-east-1_AbCdEfGhI", default=None)
    lambda_role_arn: str | None = _env(
        "LAMBDA_ROLE_ARN", "arn:aws:iam::123456789012:role/cruddur-post-confirmation", default=None
    )
    pgdata: Path = _env("CRUDDUR_PGDATA", "/path/to/pgdata", default=PROJECT_ROOT / ".pgdata")
    sql_dir: Path = PROJECT_ROOT / "sql"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            name = f.metadata.get("env")
            raw = (environ.get(name) or "").strip() if name else ""
            if not raw:
                continue
            if f.name == "ip_lookup_urls":
                values[f.name] = tuple(u.strip() for u in raw.split(",") if u.strip())
            elif f.name == "pgdata":
                values[f.name] = Path(raw).expanduser().resolve()
            else:
                values[f.name] = raw
        return cls(**values)

    def require(self, attribute: str) -> str:
        """The setting's value, or MissingSetting naming its variable and how to set it."""
        value = getattr(self, attribute)
        if value:
            return value
        meta = next(f.metadata for f in fields(self) if f.name == attribute)
        raise MissingSetting(meta["env"], meta["example"])
