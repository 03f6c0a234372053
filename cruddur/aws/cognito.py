"""The Cognito user pool: its users, matching them to `public.users` rows, and the sign-up trigger.

Functions take a cognito-idp (or Lambda) client from cruddur.aws.clients; boto3 stays out of this import.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from ..config import Settings
from ..errors import ConfigError, DatabaseError, one_line
from ..timeouts import COGNITO_SYNC_LOCK_TIMEOUT
from .clients import translated

# Seeded users carry a Cognito id starting with this (sql/seed.sql's 'MOCK-...') until the real
# person signs up. The Lambda handler holds the same rule (it ships alone); a test keeps them alike.
PLACEHOLDER_PREFIX = "MOCK"

POOL_ID = re.compile(r"[\w-]+_[0-9a-zA-Z]+")
POST_CONFIRMATION = "PostConfirmation"
COGNITO_PRINCIPAL = "cognito-idp.amazonaws.com"


def is_placeholder(cognito_user_id: str | None) -> bool:
    return bool(cognito_user_id) and cognito_user_id.startswith(PLACEHOLDER_PREFIX)


def pool_id(settings: Settings) -> str:
    """AWS_COGNITO_USER_POOL_ID, checked for shape before anything asks AWS."""
    value = settings.require("aws_cognito_user_pool_id")
    if not POOL_ID.fullmatch(value):
        raise ConfigError(f"AWS_COGNITO_USER_POOL_ID {value!r} is not a user pool id (expected e.g. us-east-1_AbCdEfGhI)")
    return value


@dataclass(frozen=True)
class CognitoUser:
    username: str
    sub: str
    preferred_username: str | None
    email: str | None
    status: str
    created: datetime | None

    @classmethod
    def from_api(cls, item: dict) -> CognitoUser:
        attributes = {a["Name"]: a.get("Value") for a in item.get("Attributes", [])}
        return cls(
            username=item["Username"],
            sub=attributes.get("sub") or item["Username"],
            preferred_username=attributes.get("preferred_username") or None,
            email=attributes.get("email"),
            status=item.get("UserStatus", ""),
            created=item.get("UserCreateDate"),
        )


def list_users(cognito: Any, user_pool_id: str) -> list[CognitoUser]:
    """Every user of the pool, all pages (ListUsers answers 60 at most per call)."""
    with translated():
        pages = cognito.get_paginator("list_users").paginate(UserPoolId=user_pool_id)
        return [CognitoUser.from_api(item) for page in pages for item in page.get("Users", [])]


# cognito.sync: users.cognito_user_id from the pool, matched on preferred_username = handle.


@dataclass(frozen=True)
class Update:
    handle: str
    old: str
    new: str


@dataclass(frozen=True)
class SubInUse:
    handle: str  # the row the Cognito user's preferred_username names
    sub: str
    held_by: str  # the handle of the row that already has this sub


@dataclass(frozen=True)
class HandleHeld:
    handle: str
    cognito_user_id: str  # the row's real Cognito id, someone else's
    sub: str  # the Cognito user whose preferred_username names the row


@dataclass(frozen=True)
class Row:
    handle: str
    cognito_user_id: str

    @property
    def placeholder(self) -> bool:
        return is_placeholder(self.cognito_user_id)


@dataclass(frozen=True)
class SyncPlan:
    updated: list[Update] = field(default_factory=list)
    already_right: list[str] = field(default_factory=list)  # handles
    no_row: list[CognitoUser] = field(default_factory=list)  # Cognito users no handle matches
    no_cognito_user: list[Row] = field(default_factory=list)  # rows no Cognito user matches
    no_preferred_username: list[CognitoUser] = field(default_factory=list)  # skipped
    sub_in_use: list[SubInUse] = field(default_factory=list)  # reported, not applied
    # Rows holding another real Cognito id: only a placeholder is replaced, as the sign-up
    # trigger refuses such a handle too (handle-taken). Reported, not applied.
    handle_held: list[HandleHeld] = field(default_factory=list)
    dry_run: bool = False  # planned only: nothing was written

    ambiguous: list[CognitoUser] = field(default_factory=list)  # several users claim one handle

    @property
    def nothing_to_do(self) -> bool:
        return not self.updated


def plan_sync(cognito_users: Iterable[CognitoUser], rows: Iterable[Row]) -> SyncPlan:
    """What syncing would change and report; nothing is changed."""
    plan = SyncPlan()
    id_of = {row.handle: row.cognito_user_id for row in rows}
    handle_of = {cognito_user_id: handle for handle, cognito_user_id in id_of.items()}
    claimants: dict[str, list[CognitoUser]] = {}
    for user in cognito_users:
        if user.preferred_username is None:
            plan.no_preferred_username.append(user)
        else:
            claimants.setdefault(user.preferred_username, []).append(user)
    for handle, users in sorted(claimants.items()):
        if handle not in id_of:
            plan.no_row.extend(users)
        elif len(users) > 1:
            plan.ambiguous.extend(users)
        elif id_of[handle] == users[0].sub:
            plan.already_right.append(handle)
        elif not is_placeholder(id_of[handle]):
            plan.handle_held.append(HandleHeld(handle, id_of[handle], users[0].sub))
        elif users[0].sub in handle_of:
            plan.sub_in_use.append(SubInUse(handle, users[0].sub, handle_of[users[0].sub]))
        else:
            plan.updated.append(Update(handle, id_of[handle], users[0].sub))
    plan.no_cognito_user.extend(Row(h, i) for h, i in sorted(id_of.items()) if h not in claimants)
    return plan


def sync(connection_url: str, cognito_users: list[CognitoUser], dry_run: bool = False, confirmed: list[Update] | None = None) -> SyncPlan:
    """Plan against the rows as they are, and apply the updates, in one transaction (the rows
    are locked meanwhile, so a sign-up cannot slip in between the plan and the updates).

    With `confirmed` (the updates a user agreed to), a plan that differs under the lock is
    refused and nothing changes: only what was confirmed is ever written."""
    import psycopg

    from ..postgres.connect import connect, set_lock_timeout

    with connect(connection_url) as conn:
        try:
            with conn.transaction():
                set_lock_timeout(conn, COGNITO_SYNC_LOCK_TIMEOUT, local=True)
                found = conn.execute("SELECT handle, cognito_user_id FROM public.users FOR UPDATE").fetchall()
                plan = replace(plan_sync(cognito_users, [Row(*row) for row in found]), dry_run=dry_run)
                if confirmed is not None and set(plan.updated) != set(confirmed):
                    raise DatabaseError(
                        f"public.users changed since you confirmed: {len(plan.updated)} row(s) would change now,"
                        f" not the {len(confirmed)} shown; nothing changed, run it again to see the new plan"
                    )
                if not dry_run and plan.updated:
                    with conn.cursor() as cursor:
                        cursor.executemany(
                            "UPDATE public.users SET cognito_user_id = %s WHERE handle = %s",
                            [(u.new, u.handle) for u in plan.updated],
                        )
        except psycopg.errors.LockNotAvailable:
            raise DatabaseError(
                f"public.users stayed locked by another session for {COGNITO_SYNC_LOCK_TIMEOUT:g} s"
                " (a migration or db.setup?); nothing changed, run it again"
            ) from None
        except psycopg.errors.UndefinedTable:
            raise DatabaseError("public.users does not exist (load the schema first: inv db.setup)") from None
        except psycopg.Error as e:
            raise DatabaseError(f"cognito sync failed, nothing changed: {type(e).__name__}: {one_line(e)}") from None
    return plan


# lambda.attach: the function as the pool's post-confirmation trigger.


@dataclass(frozen=True)
class Attachment:
    user_pool_id: str
    function_arn: str
    previous_trigger: str | None  # the pool's PostConfirmation before
    trigger_changed: bool
    permission_granted: bool  # False: Cognito could already invoke the function

    @property
    def changed(self) -> bool:
        return self.trigger_changed or self.permission_granted


def attach(cognito: Any, lambda_client: Any, user_pool_id: str, function: str, dry: bool = False) -> Attachment:
    """Make `function` the pool's post-confirmation trigger, allowed to be invoked by the pool.

    The grant comes first, so the pool never calls a function it may not invoke. The pool's
    other triggers and settings stay as they are; a second run changes nothing. `dry`: the same
    reads, no write; the Attachment says what a real run would change."""
    with translated():
        function_arn = lambda_client.get_function(FunctionName=function)["Configuration"]["FunctionArn"]
        pool = cognito.describe_user_pool(UserPoolId=user_pool_id)["UserPool"]
    granted = _grant_invoke(lambda_client, function, user_pool_id, pool["Arn"], dry)
    triggers = dict(pool.get("LambdaConfig") or {})
    previous = triggers.get(POST_CONFIRMATION)
    if previous != function_arn and not dry:
        triggers[POST_CONFIRMATION] = function_arn
        with translated():
            cognito.update_user_pool(**_settings_kept(cognito, pool), UserPoolId=user_pool_id, LambdaConfig=triggers)
    return Attachment(user_pool_id, function_arn, previous, previous != function_arn, granted)


def _grant_invoke(lambda_client: Any, function: str, user_pool_id: str, pool_arn: str, dry: bool) -> bool:
    import json

    from ..errors import AwsError

    try:
        with translated():
            policy = json.loads(lambda_client.get_policy(FunctionName=function)["Policy"])
    except AwsError as e:
        if e.code != "ResourceNotFoundException":  # the function has no resource policy yet
            raise
        policy = {}
    for statement in policy.get("Statement", []):
        principal = (statement.get("Principal") or {}).get("Service")
        source = ((statement.get("Condition") or {}).get("ArnLike") or {}).get("AWS:SourceArn")
        if principal == COGNITO_PRINCIPAL and source == pool_arn and statement.get("Effect") == "Allow":
            return False
    if dry:
        return True
    with translated():
        lambda_client.add_permission(
            FunctionName=function,
            StatementId=f"cognito-{user_pool_id}-invoke",
            Action="lambda:InvokeFunction",
            Principal=COGNITO_PRINCIPAL,
            SourceArn=pool_arn,
        )
    return True


def _settings_kept(cognito: Any, pool: dict) -> dict:
    """The pool's current values for every setting UpdateUserPool takes: the API resets any
    setting left out to its default, so an update passes them all back."""
    members = cognito.meta.service_model.operation_model("UpdateUserPool").input_shape.members
    kept = {name: pool[name] for name in members if name in pool and name not in ("UserPoolId", "LambdaConfig")}
    if "AdminCreateUserConfig" in kept:
        # Deprecated, and refused next to PasswordPolicy.TemporaryPasswordValidityDays, which replaced it.
        kept["AdminCreateUserConfig"] = {k: v for k, v in kept["AdminCreateUserConfig"].items() if k != "UnusedAccountValidityDays"}
    return kept
