"""Upload the post-confirmation zip to its Lambda function (creating the function when it is
missing, in the database's VPC), and align its settings.

boto3 is imported inside the calls (cruddur.aws.clients), on the deploy path only. Credentials and region are boto3's own
(AWS_PROFILE, AWS_DEFAULT_REGION, AWS_ENDPOINT_URL...).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..config import Settings
from ..errors import AwsError, ConfigError, MissingSetting, one_line
from ..lambda_build.defaults import DEFAULT_TIMEOUT_SECONDS, FUNCTION_NAME
from ..lambda_build.package import Package
from ..postgres.roles import SIGNUP
from . import clients

# The master URL an earlier deploy put in the function: removed when the database settings go in.
CONNECTION_VARIABLE = "CONNECTION_URL"
SIGNUP_USER = SIGNUP  # the database role db.roles makes for the Lambda
POLICY_NAME = "cruddur-rds-connect"
# Each running copy of the function holds one connection. A db.t3.micro allows about 80 (its
# max_connections), and the backend's pool and the operator's tasks need theirs: 5 copies sign
# up 5 users at once, and Cognito retries those it throttles.
DEFAULT_RESERVED_CONCURRENCY = 5


@dataclass(frozen=True)
class Deployment:
    function: str
    code: str  # "created", "updated" or "unchanged"
    code_sha256: str
    changed: tuple[str, ...] = ()  # settings brought in line: Handler, Runtime, DB_HOST, ...
    policy_changed: bool = False  # the role's rds-db:connect policy was added or corrected
    concurrency: int | None = None  # the reserved concurrency now, when asked for
    concurrency_changed: bool = False


@dataclass(frozen=True)
class DatabaseAccess:
    """How the function reaches the database: IAM authentication as `user`, no password."""

    host: str
    port: int
    dbname: str
    region: str
    account: str
    resource_id: str  # the instance's DbiResourceId, which IAM policies name
    user: str = SIGNUP_USER

    def variables(self) -> dict[str, str]:
        return {
            "DB_HOST": self.host,
            "DB_PORT": str(self.port),
            "DB_NAME": self.dbname,
            "DB_USER": self.user,
            "DB_AUTH": "iam",
        }

    @property
    def resource_arn(self) -> str:
        return f"arn:aws:rds-db:{self.region}:{self.account}:dbuser:{self.resource_id}/{self.user}"

    def policy(self) -> dict:
        return {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "rds-db:connect", "Resource": self.resource_arn}],
        }


def database_access(rds_client: Any, identifier: str, user: str = SIGNUP_USER) -> DatabaseAccess:
    """The RDS instance's endpoint and identity for IAM authentication; AwsError when it has
    no endpoint yet or IAM database authentication is off."""
    from . import rds

    instance = rds.get_instance(rds_client, identifier)
    if not instance.host:
        raise AwsError(f"RDS instance {identifier} has no endpoint yet ({instance.status}); run inv rds.wait first")
    if not instance.iam_auth:
        raise AwsError(
            f"RDS instance {identifier} has IAM database authentication off; turn it on with: aws rds modify-db-instance"
            f" --db-instance-identifier {identifier} --enable-iam-database-authentication --apply-immediately"
        )
    _, _, _, region, account, _ = instance.arn.split(":", 5)
    return DatabaseAccess(instance.host, instance.port, instance.db_name or "postgres", region, account, instance.resource_id, user)


def client():
    """A Lambda client from boto3's own configuration."""
    return clients.client("lambda")


@dataclass(frozen=True)
class NewFunction:
    """What creating the function needs beyond the package."""

    role_arn: str
    subnet_ids: tuple[str, ...]
    security_group_ids: tuple[str, ...]
    timeout: int = DEFAULT_TIMEOUT_SECONDS


def role_arn(settings: Settings, given: str | None) -> str:
    """--role-arn, else LAMBDA_ROLE_ARN; one line when neither is there."""
    if given:
        return given
    try:
        return settings.require("lambda_role_arn")
    except MissingSetting as e:
        raise ConfigError(f"{e}; or pass --role-arn (the function's execution role, needed to create it)") from None


def database_vpc(rds_client: Any, identifier: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The subnets and security groups of RDS instance `identifier`: where the function can reach it."""
    from . import rds

    instance = rds.get_instance(rds_client, identifier)
    subnets, groups = instance.subnets, instance.security_groups
    if not subnets or not groups:
        raise AwsError(
            f"RDS instance {identifier} shows no {'subnets' if not subnets else 'VPC security group'};"
            " pass --subnet-ids and --security-group-ids"
        )
    return subnets, groups


def exists(lambda_client, function: str) -> bool:
    """Whether the function exists (an AwsError when AWS cannot say)."""
    return _read_configuration(lambda_client, function, creatable=True) is not None


def deploy(
    package: Package,
    function: str = FUNCTION_NAME,
    database: DatabaseAccess | None = None,
    lambda_client=None,
    new_function: Callable[[], NewFunction] | None = None,
    reserved_concurrency: int | None = None,
    iam_client=None,
    dry: bool = False,
) -> Deployment:
    """Upload the package unless the function already runs these exact bytes; then make the
    function's handler, runtime (and, with `database`, its DB_* settings, its role's
    rds-db:connect policy) and reserved concurrency (when given) match. Waits for each update.

    A missing function is created from `new_function()` (asked only then), or is an error
    without it. `dry`: the same reads and comparisons, no write; the Deployment says what a
    real run would do (the package's zip is not read)."""
    lambda_client = lambda_client or client()
    current = _read_configuration(lambda_client, function, creatable=new_function is not None)
    if current is None:
        new = new_function()
        if dry:
            changed = tuple(database.variables()) if database is not None else ()
            created, current = Deployment(function, "created", package.code_sha256, changed), {"Role": new.role_arn}
        else:
            created = _create(lambda_client, package, function, database, new)
            current = _read_configuration(lambda_client, function)
        return _align_access(lambda_client, iam_client, created, current, database, reserved_concurrency, dry)
    if current.get("LastUpdateStatus") == "InProgress":
        # Lambda refuses a second update while one is running (ResourceConflictException);
        # what the running update leaves behind is what to compare against.
        _wait_updated(lambda_client, function)
        current = _read_configuration(lambda_client, function)

    code = "unchanged"
    if current.get("CodeSha256") != package.code_sha256:
        if not dry:
            _upload(lambda_client, function, package)
        code = "updated"

    changes, changed = _configuration_changes(current, package, database)
    if changes and not dry:
        with clients.translated():
            lambda_client.update_function_configuration(FunctionName=function, **changes)
        _wait_updated(lambda_client, function)
    deployment = Deployment(function, code, package.code_sha256, changed)
    return _align_access(lambda_client, iam_client, deployment, current, database, reserved_concurrency, dry)


def _upload(lambda_client, function: str, package: Package) -> None:
    zipped = package.path.read_bytes()
    with clients.translated():
        updated = lambda_client.update_function_code(FunctionName=function, ZipFile=zipped, Architectures=[package.architecture])
    _wait_updated(lambda_client, function)
    if updated.get("CodeSha256") != package.code_sha256:
        raise AwsError(
            f"function {function} reports CodeSha256 {updated.get('CodeSha256')} after the upload, not the package's {package.code_sha256}"
        )


def _align_access(lambda_client, iam_client, deployment: Deployment, current: dict, database, reserved_concurrency, dry) -> Deployment:
    from dataclasses import replace

    if database is not None:
        deployment = replace(deployment, policy_changed=allow_connect(iam_client or clients.client("iam"), current["Role"], database, dry))
    if reserved_concurrency is not None:
        # A function not created yet (a dry run's) has no concurrency to read: it would be set.
        missing = dry and deployment.code == "created"
        changed = missing or reserve_concurrency(lambda_client, deployment.function, reserved_concurrency, dry)
        deployment = replace(deployment, concurrency=reserved_concurrency, concurrency_changed=changed)
    return deployment


def allow_connect(iam_client, role_arn: str, database: DatabaseAccess, dry: bool = False) -> bool:
    """The execution role's inline policy allowing rds-db:connect as the database user, put
    there unless it already says exactly that (`dry`: left as it is); whether it changed (would)."""
    from botocore.exceptions import ClientError

    role = role_arn.rsplit("/", 1)[-1]
    wanted = database.policy()
    with clients.translated():
        try:
            found = iam_client.get_role_policy(RoleName=role, PolicyName=POLICY_NAME)["PolicyDocument"]
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") != "NoSuchEntity":
                raise
            found = None
        if isinstance(found, str):  # some endpoints leave it URL-encoded JSON
            from urllib.parse import unquote

            found = json.loads(unquote(found))
        if found == wanted or dry:
            return found != wanted
        iam_client.put_role_policy(RoleName=role, PolicyName=POLICY_NAME, PolicyDocument=json.dumps(wanted))
    return True


def reserve_concurrency(lambda_client, function: str, count: int, dry: bool = False) -> bool:
    """The function's reserved concurrency set to `count` unless it is already (`dry`: left as it
    is); whether it changed (would)."""
    with clients.translated():
        found = lambda_client.get_function_concurrency(FunctionName=function).get("ReservedConcurrentExecutions")
        if found == count or dry:
            return found != count
        lambda_client.put_function_concurrency(FunctionName=function, ReservedConcurrentExecutions=count)
    return True


def _create(lambda_client, package: Package, function: str, database: DatabaseAccess | None, new: NewFunction) -> Deployment:
    from botocore.exceptions import WaiterError

    options = {}
    if database is not None:
        options["Environment"] = {"Variables": database.variables()}
    with clients.translated():
        created = lambda_client.create_function(
            FunctionName=function,
            Runtime=package.runtime,
            Handler=package.handler,
            Architectures=[package.architecture],
            Role=new.role_arn,
            Timeout=new.timeout,
            Code={"ZipFile": package.path.read_bytes()},
            VpcConfig={"SubnetIds": list(new.subnet_ids), "SecurityGroupIds": list(new.security_group_ids)},
            **options,
        )
    try:
        with clients.translated():
            # A function in a VPC stays Pending while Lambda sets up its network interfaces.
            lambda_client.get_waiter("function_active_v2").wait(FunctionName=function)
    except WaiterError as e:
        raise AwsError(f"function {function} was created but did not become active: {one_line(e)}") from None
    changed = tuple(database.variables()) if database is not None else ()
    return Deployment(function, "created", created.get("CodeSha256", package.code_sha256), changed)


def _configuration_changes(current: dict, package: Package, database: DatabaseAccess | None) -> tuple[dict, tuple[str, ...]]:
    changes: dict = {}
    changed: list[str] = []
    if current.get("Handler") != package.handler:
        changes["Handler"] = package.handler
        changed.append("Handler")
    if current.get("Runtime") != package.runtime:
        changes["Runtime"] = package.runtime
        changed.append("Runtime")
    if database is not None:
        # The API replaces the whole set: keep the function's other variables.
        variables = dict((current.get("Environment") or {}).get("Variables") or {})
        wanted = database.variables()
        differ = [name for name, value in wanted.items() if variables.get(name) != value]
        if CONNECTION_VARIABLE in variables:
            del variables[CONNECTION_VARIABLE]
            differ.append(f"{CONNECTION_VARIABLE} removed")
        if differ:
            variables.update(wanted)
            changes["Environment"] = {"Variables": variables}
            changed.extend(differ)
    return changes, tuple(changed)


def _read_configuration(lambda_client, function: str, creatable: bool = False) -> dict | None:
    """The function's configuration; None when it does not exist and may be created."""
    try:
        with clients.translated():
            return lambda_client.get_function(FunctionName=function)["Configuration"]
    except AwsError as e:
        if e.code != "ResourceNotFoundException":
            raise
        if creatable:
            return None
        raise AwsError(f"{e} (create the function first, or let lambda.deploy create it)", e.code) from None


def _wait_updated(lambda_client, function: str) -> None:
    from botocore.exceptions import WaiterError

    try:
        with clients.translated():
            lambda_client.get_waiter("function_updated_v2").wait(FunctionName=function)
    except WaiterError as e:
        if "Error" in (e.last_response or {}):
            raise clients.error_from_response(e.last_response, "GetFunction") from None
        raise AwsError(f"function {function} did not finish updating: {one_line(e)}") from None
