"""The production RDS instance: create, describe, wait, stop/start, delete, and its connection URL.

Functions take an RDS client from cruddur.aws.clients; boto3 stays out of this import.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..errors import MASK, AwsError, ConfigError
from ..polling import Deadline
from ..timeouts import RDS_POLL_SECONDS, RDS_WAIT_TIMEOUT
from .clients import error_from_response, region, translated

DEFAULT_IDENTIFIER = "cruddur-db-instance"
# A major version: RDS picks its current default minor for it. 17 is in RDS standard support.
DEFAULT_ENGINE_VERSION = "17"
# Without Extended Support, RDS upgrades the instance to a supported major when standard support
# ends, instead of billing Extended Support from then on (which is RDS's own default).
EXTENDED_SUPPORT = {
    False: "open-source-rds-extended-support-disabled",
    True: "open-source-rds-extended-support",
}
OFFERED_SHOWN = 5  # how many of the versions RDS offers a refusal lists
STOPPED = {"stopped", "stopping"}
RUNNING = {"available", "starting"}

IDENTIFIER = re.compile(r"[A-Za-z](?:[A-Za-z0-9]|-(?!-)){0,62}")
# For PostgreSQL on RDS: a letter, then letters, digits or underscores.
DB_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,62}")
USERNAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,62}")
INSTANCE_CLASS = re.compile(r"db\.[a-z0-9]+\.[a-z0-9]+")
ENGINE_VERSION = re.compile(r"\d+(?:\.\d+)*")
AVAILABILITY_ZONE = re.compile(r"[a-z]{2}(?:-[a-z]+)+-\d[a-z]")
PASSWORD_FORBIDDEN = set("/'\"@ ")


def chosen_identifier(identifier: str | None) -> str:
    """The instance a task acts on: the one its --identifier names, else DEFAULT_IDENTIFIER."""
    return identifier or DEFAULT_IDENTIFIER


def check_identifier(value: str, what: str = "DB instance identifier") -> str:
    """RDS's rule: 1-63 letters, digits or hyphens; a letter first; no trailing or double hyphen."""
    if not IDENTIFIER.fullmatch(value) or value.endswith("-"):
        raise ConfigError(
            f"{what} {value!r} is invalid: 1-63 letters, digits or hyphens, starting with a letter, without a trailing or double hyphen"
        )
    return value


def check_password(password: str) -> None:
    """RDS PostgreSQL's rule; the message never repeats the password."""
    if not 8 <= len(password) <= 128:
        raise ConfigError(f"the master password must have 8 to 128 characters (it has {len(password)})")
    if any(ch in PASSWORD_FORBIDDEN or not ch.isprintable() or not ch.isascii() for ch in password):
        raise ConfigError("the master password may hold printable ASCII only, without / ' \" @ or spaces")


@dataclass(frozen=True)
class CreateOptions:
    """The bootcamp's create-db-instance call, as defaults."""

    identifier: str = DEFAULT_IDENTIFIER
    instance_class: str = "db.t3.micro"
    engine_version: str = DEFAULT_ENGINE_VERSION
    storage_gb: int = 20
    availability_zone: str = "us-east-1a"
    db_name: str = "cruddur"
    username: str = "cruddurroot"
    publicly_accessible: bool = True
    manage_password: bool = False
    extended_support: bool = False
    # Lets the app's roles log in with IAM tokens instead of passwords (db.roles, lambda.deploy).
    iam_auth: bool = True

    @property
    def major_version(self) -> str:
        return self.engine_version.split(".")[0]

    def check(self) -> None:
        check_identifier(self.identifier)
        checks = [
            (INSTANCE_CLASS, self.instance_class, "instance class", "db.t3.micro"),
            (ENGINE_VERSION, self.engine_version, "engine version", f"{DEFAULT_ENGINE_VERSION} or 17.6"),
            (AVAILABILITY_ZONE, self.availability_zone, "availability zone", "us-east-1a"),
            (DB_NAME, self.db_name, "database name", "cruddur"),
            (USERNAME, self.username, "master username", "cruddurroot"),
        ]
        for pattern, value, what, example in checks:
            if not pattern.fullmatch(value):
                raise ConfigError(f"{what} {value!r} is invalid (e.g. {example})")
        if not 20 <= self.storage_gb <= 65536:
            raise ConfigError(f"storage {self.storage_gb} GB is out of range: gp2 takes 20 to 65536 GB")

    def summary(self) -> list[str]:
        """What create would make, one line per idea (the password is neither read nor shown)."""
        support = "with" if self.extended_support else "without"
        keeper = (
            "RDS keeps the master password in Secrets Manager"
            if self.manage_password
            else "you keep the master password (RDS_MASTER_PASSWORD, or asked on a terminal)"
        )
        return [
            f"would create {self.identifier}: postgres {self.engine_version} ({support} Extended Support), {self.instance_class},"
            f" {self.storage_gb} GB gp2, in {self.availability_zone}",
            f"  database {self.db_name}, master user {self.username}, {'public' if self.publicly_accessible else 'not public'},"
            f" IAM database authentication {'on' if self.iam_auth else 'off'}",
            f"  {keeper}",
        ]

    def parameters(self, password: str | None) -> dict:
        params = dict(
            DBInstanceIdentifier=self.identifier,
            DBInstanceClass=self.instance_class,
            Engine="postgres",
            EngineVersion=self.engine_version,
            MasterUsername=self.username,
            AllocatedStorage=self.storage_gb,
            AvailabilityZone=self.availability_zone,
            BackupRetentionPeriod=0,
            Port=5432,
            MultiAZ=False,
            DBName=self.db_name,
            StorageType="gp2",
            PubliclyAccessible=self.publicly_accessible,
            StorageEncrypted=True,
            EnablePerformanceInsights=True,
            PerformanceInsightsRetentionPeriod=7,
            DeletionProtection=False,
            EngineLifecycleSupport=EXTENDED_SUPPORT[self.extended_support],
            EnableIAMDatabaseAuthentication=self.iam_auth,
        )
        if self.manage_password:
            params["ManageMasterUserPassword"] = True
        else:
            params["MasterUserPassword"] = password
        return params


@dataclass(frozen=True)
class Instance:
    identifier: str
    status: str
    engine: str
    engine_version: str
    instance_class: str
    storage_gb: int
    storage_type: str
    public: bool
    username: str
    db_name: str | None
    host: str | None
    port: int
    security_groups: tuple[str, ...] = field(default_factory=tuple)
    subnets: tuple[str, ...] = field(default_factory=tuple)  # of its DB subnet group: where a Lambda can reach it
    secret_arn: str | None = None
    lifecycle_support: str | None = None  # EngineLifecycleSupport, when RDS reports it
    iam_auth: bool = False  # IAM database authentication is on
    arn: str = ""
    resource_id: str = ""  # DbiResourceId: what rds-db:connect policies name

    @classmethod
    def from_api(cls, item: dict) -> Instance:
        endpoint = item.get("Endpoint") or {}
        return cls(
            identifier=item["DBInstanceIdentifier"],
            status=item.get("DBInstanceStatus", "unknown"),
            engine=item.get("Engine", ""),
            engine_version=item.get("EngineVersion", ""),
            instance_class=item.get("DBInstanceClass", ""),
            storage_gb=item.get("AllocatedStorage", 0),
            storage_type=item.get("StorageType", ""),
            public=bool(item.get("PubliclyAccessible")),
            username=item.get("MasterUsername", ""),
            db_name=item.get("DBName"),
            host=endpoint.get("Address"),
            port=endpoint.get("Port") or item.get("DbInstancePort") or 5432,
            security_groups=tuple(g["VpcSecurityGroupId"] for g in item.get("VpcSecurityGroups", [])),
            subnets=tuple(s["SubnetIdentifier"] for s in (item.get("DBSubnetGroup") or {}).get("Subnets", [])),
            secret_arn=(item.get("MasterUserSecret") or {}).get("SecretArn"),
            lifecycle_support=item.get("EngineLifecycleSupport"),
            iam_auth=bool(item.get("IAMDatabaseAuthenticationEnabled")),
            arn=item.get("DBInstanceArn", ""),
            resource_id=item.get("DbiResourceId", ""),
        )

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}" if self.host else "(not assigned yet)"

    def connection_url(self, password: str | None = None) -> str | None:
        """postgresql://user:PASSWORD@host:port/db, the password masked unless given; None without a host."""
        if not self.host:
            return None
        from ..postgres import urls  # psycopg stays out of this module's import

        keywords = {"user": self.username, "password": password or MASK, "host": self.host, "port": str(self.port)}
        return urls.build({**keywords, "dbname": self.db_name or "postgres"}, keep=MASK)


def find_instance(rds: Any, identifier: str) -> Instance | None:
    check_identifier(identifier)
    from botocore.exceptions import ClientError

    with translated():
        try:
            items = rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"]
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") == "DBInstanceNotFound":
                return None
            raise
    return Instance.from_api(items[0]) if items else None


def command_for(command: str, identifier: str | None) -> str:
    """An `inv rds.*`/`inv sg.*` command for the instance: with --identifier unless it is the default."""
    if identifier is None or identifier == DEFAULT_IDENTIFIER:
        return command
    return f"{command} --identifier {shlex.quote(identifier)}"


def get_instance(rds: Any, identifier: str) -> Instance:
    """The instance, or an AwsError that says how to create it."""
    instance = find_instance(rds, identifier)
    if instance is None:
        create = command_for("inv rds.create", identifier)
        raise AwsError(
            f"there is no RDS instance {identifier} in {region(rds)} (DBInstanceNotFound); create it with: {create}",
            "DBInstanceNotFound",
        )
    return instance


def existing_for_create(rds: Any, options: CreateOptions) -> Instance | None:
    """The options checked, then the instance create would leave as it is (None: create would make it)."""
    options.check()
    return find_instance(rds, options.identifier)


def create(rds: Any, options: CreateOptions, password: Callable[[], str]) -> tuple[Instance, bool]:
    """The instance, and whether it was created now (False: it already existed, left as it is).

    `password` is asked for only when the instance has to be created and RDS does not manage it.
    """
    existing = existing_for_create(rds, options)
    if existing:
        return existing, False
    secret = None
    if not options.manage_password:
        secret = password()
        check_password(secret)
    try:
        with translated():
            item = rds.create_db_instance(**options.parameters(secret))["DBInstance"]
    except AwsError as refused:
        if refused.code == "InvalidParameterCombination" and "Cannot find version" in str(refused):
            raise version_refused(rds, options, refused) from None
        raise
    return Instance.from_api(item), True


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else -1 for part in version.split("."))


def offered_versions(rds: Any, major: str) -> list[str]:
    """The PostgreSQL versions RDS offers for new instances of `major` here, newest first."""
    with translated():
        pages = rds.get_paginator("describe_db_engine_versions").paginate(Engine="postgres", DBParameterGroupFamily=f"postgres{major}")
        versions = {v["EngineVersion"] for page in pages for v in page["DBEngineVersions"]}
    return sorted(versions, key=version_key, reverse=True)


def version_refused(rds: Any, options: CreateOptions, refused: AwsError) -> AwsError:
    """The refusal of an engine version, with what RDS does offer for that major (AWS's own words
    when it will not say)."""
    major = options.major_version
    try:
        offered = offered_versions(rds, major)
    except AwsError:
        return refused
    wanted = f"RDS cannot create PostgreSQL {options.engine_version} in {region(rds)} ({refused.code})"
    if not offered:
        return AwsError(
            f"{wanted} and offers no {major}.x version there; pass --engine-version {DEFAULT_ENGINE_VERSION}",
            refused.code,
        )
    newest = ", ".join(offered[:OFFERED_SHOWN])
    return AwsError(
        f"{wanted}; the newest {major}.x it offers: {newest} (pass --engine-version {major} to get its default minor, or one of these)",
        refused.code,
    )


def wait_available(
    rds: Any,
    identifier: str,
    timeout: float = RDS_WAIT_TIMEOUT,
    on_status: Callable[[str], None] = lambda status: None,
    poll_seconds: float = RDS_POLL_SECONDS,
) -> Instance:
    """Block until the instance is `available`; AwsError on a dead end (deleted, failed, stopped) or timeout.

    boto3's db_instance_available waiter decides, one attempt at a time, so the caller sees each status.
    """
    from botocore.exceptions import WaiterError

    check_identifier(identifier)
    waiter = rds.get_waiter("db_instance_available")
    deadline = Deadline(timeout)
    while True:
        try:
            with translated():
                waiter.wait(DBInstanceIdentifier=identifier, WaiterConfig={"Delay": 1, "MaxAttempts": 1})
            return get_instance(rds, identifier)
        except WaiterError as e:
            response = e.last_response or {}
            if "Error" in response:
                raise error_from_response(response, "DescribeDBInstances") from None
            items = response.get("DBInstances") or [{}]
            status = items[0].get("DBInstanceStatus", "unknown")
            if "terminal failure" in e.kwargs.get("reason", ""):
                raise AwsError(f"RDS instance {identifier} is {status}; it will not become available") from None
            # boto3's waiter keeps polling these, but nothing brings a stopped instance back but a start.
            if status in STOPPED:
                raise AwsError(
                    f"RDS instance {identifier} is {status}; it will not become available by itself:"
                    f" run {command_for('inv rds.start', identifier)}, then wait again"
                ) from None
        on_status(status)
        if not deadline.pause(poll_seconds):
            raise AwsError(f"timed out after {timeout:g}s: RDS instance {identifier} is still {status}")


def stop(rds: Any, identifier: str, dry: bool = False) -> tuple[Instance, bool]:
    """The instance, and whether this call stopped it (False: it was stopped or stopping already).
    `dry`: whether it would, the instance read as it is and left so."""
    return _move(rds, identifier, STOPPED, rds.stop_db_instance, dry)


def start(rds: Any, identifier: str, dry: bool = False) -> tuple[Instance, bool]:
    """The instance, and whether this call started it (False: it was available or starting already).
    `dry`: whether it would, the instance read as it is and left so."""
    return _move(rds, identifier, RUNNING, rds.start_db_instance, dry)


def _move(rds: Any, identifier: str, already: set[str], action: Callable[..., dict], dry: bool) -> tuple[Instance, bool]:
    current = get_instance(rds, identifier)
    if current.status in already or dry:
        return current, current.status not in already
    with translated():
        item = action(DBInstanceIdentifier=identifier)["DBInstance"]
    return Instance.from_api(item), True


def final_snapshot_identifier(identifier: str, now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    return check_identifier(f"{identifier}-final-{stamp}", "snapshot identifier")


def delete(rds: Any, identifier: str, skip_final_snapshot: bool = False) -> tuple[Instance, str | None]:
    """Start deleting the instance; its state, and the final snapshot's identifier (None when skipped)."""
    check_identifier(identifier)
    params: dict = {"DBInstanceIdentifier": identifier, "SkipFinalSnapshot": skip_final_snapshot}
    snapshot = None
    if not skip_final_snapshot:
        snapshot = params["FinalDBSnapshotIdentifier"] = final_snapshot_identifier(identifier)
    with translated():
        item = rds.delete_db_instance(**params)["DBInstance"]
    return Instance.from_api(item), snapshot
