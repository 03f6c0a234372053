"""The master password of an instance whose password RDS manages (`rds.create --manage-password`):
kept in Secrets Manager as the instance's MasterUserSecret and rotated by RDS every 7 days.

Functions take a Secrets Manager client from cruddur.aws.clients; boto3 stays out of this import.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from ..errors import AwsError, CruddurError
from .clients import translated
from .rds import Instance

T = TypeVar("T")
# What libpq says when the password is wrong: the secret may have been rotated since it was read.
AUTH_FAILED = "password authentication failed"


def master_password(secrets: Any, instance: Instance) -> str:
    """The password in the instance's MasterUserSecret (its current version)."""
    if not instance.secret_arn:
        raise AwsError(f"RDS instance {instance.identifier} has no MasterUserSecret: its password is not managed by RDS")
    with translated():
        value = secrets.get_secret_value(SecretId=instance.secret_arn)
    try:
        password = json.loads(value["SecretString"])["password"]
    except (KeyError, TypeError, ValueError):
        raise AwsError(f"the MasterUserSecret of {instance.identifier} holds no password field") from None
    if not isinstance(password, str) or not password:
        raise AwsError(f"the MasterUserSecret of {instance.identifier} holds no password field")
    return password


def master_url(secrets: Any, instance: Instance) -> str:
    """The instance's master URL, with the password read from Secrets Manager now."""
    return instance.connection_url(master_password(secrets, instance))


def with_master_url(secrets: Any, instance: Instance, action: Callable[[str], T]) -> T:
    """action(master URL); when it fails on the password and the secret has changed meanwhile
    (RDS rotated it between the read and the login), once more with the new one."""
    password = master_password(secrets, instance)
    try:
        return action(instance.connection_url(password))
    except CruddurError as e:
        if AUTH_FAILED not in str(e):
            raise
        rotated = master_password(secrets, instance)
        if rotated == password:
            raise
    return action(instance.connection_url(rotated))
