"""IAM database authentication tokens: a password RDS accepts for 15 minutes, signed locally from
the AWS credentials in use (no network call), for a user that is a member of rds_iam."""

from __future__ import annotations

import threading
from collections.abc import Callable

from . import clients


def token_signer(host: str, port: int, user: str, region: str | None = None) -> Callable[[], str]:
    """A function returning a new token for `user` at host:port each time it is called (the
    boto3 client is made once, on the first call)."""
    made: dict = {}
    lock = threading.Lock()

    def sign() -> str:
        with lock:
            if "rds" not in made:
                made["rds"] = clients.client("rds")
        rds = made["rds"]
        with clients.translated():
            return rds.generate_db_auth_token(DBHostname=host, Port=port, DBUsername=user, Region=region or clients.region(rds))

    return sign
