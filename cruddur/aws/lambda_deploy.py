"""Upload the post-confirmation zip to its Lambda function (creating the function when it is
missing, in the database's VPC), and align its settings.

boto3 is imported inside the calls (cruddur.aws.clients), on the deploy path only. Credentials and region are boto3's own
(AWS_PROFILE, AWS_DEFAULT_REGION, AWS_ENDPOINT_URL...).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ..config import Settings
from ..errors import MASK, AwsError, ConfigError, MissingSetting, one_line, scrub
from ..lambda_build.defaults import DEFAULT_TIMEOUT_SECONDS, FUNCTION_NAME
from ..lambda_build.package import Package
from ..postgres import urls
from . import clients

CONNECTION_VARIABLE = "CONNECTION_URL"


@dataclass(frozen=True)
class Deployment:
    function: str
    code: str  # "created", "updated" or "unchanged"
    code_sha256: str
    changed: tuple[str, ...] = ()  # settings brought in line: Handler, Runtime, CONNECTION_URL


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

    with clients.translated():
        item = rds_client.describe_db_instances(DBInstanceIdentifier=rds.check_identifier(identifier))["DBInstances"][0]
    subnets = tuple(s["SubnetIdentifier"] for s in (item.get("DBSubnetGroup") or {}).get("Subnets", []))
    groups = tuple(g["VpcSecurityGroupId"] for g in item.get("VpcSecurityGroups", []))
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
    connection_url: str | None = None,
    lambda_client=None,
    new_function: Callable[[], NewFunction] | None = None,
) -> Deployment:
    """Upload the package unless the function already runs these exact bytes; then make the
    function's handler, runtime (and CONNECTION_URL, when given) match. Waits for each update.

    A missing function is created from `new_function()` (asked only then), or is an error
    without it."""
    lambda_client = lambda_client or client()
    current = _read_configuration(lambda_client, function, creatable=new_function is not None)
    if current is None:
        return _create(lambda_client, package, function, connection_url, new_function())
    if current.get("LastUpdateStatus") == "InProgress":
        # Lambda refuses a second update while one is running (ResourceConflictException);
        # what the running update leaves behind is what to compare against.
        _wait_updated(lambda_client, function)
        current = _read_configuration(lambda_client, function)

    code = "unchanged"
    if current.get("CodeSha256") != package.code_sha256:
        zipped = package.path.read_bytes()
        with clients.translated():
            updated = lambda_client.update_function_code(FunctionName=function, ZipFile=zipped, Architectures=[package.architecture])
        _wait_updated(lambda_client, function)
        if updated.get("CodeSha256") != package.code_sha256:
            raise AwsError(
                f"function {function} reports CodeSha256 {updated.get('CodeSha256')} after the upload,"
                f" not the package's {package.code_sha256}"
            )
        code = "updated"

    changes, changed = _configuration_changes(current, package, connection_url)
    if changes:
        with _secret_kept_out(connection_url if "Environment" in changes else None):
            with clients.translated():
                lambda_client.update_function_configuration(FunctionName=function, **changes)
            _wait_updated(lambda_client, function)
    return Deployment(function, code, package.code_sha256, changed)


def _create(lambda_client, package: Package, function: str, connection_url: str | None, new: NewFunction) -> Deployment:
    from botocore.exceptions import WaiterError

    options = {}
    if connection_url is not None:
        options["Environment"] = {"Variables": {CONNECTION_VARIABLE: connection_url}}
    with _secret_kept_out(connection_url):
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
    changed = (CONNECTION_VARIABLE,) if connection_url is not None else ()
    return Deployment(function, "created", created.get("CodeSha256", package.code_sha256), changed)


def _configuration_changes(current: dict, package: Package, connection_url: str | None) -> tuple[dict, tuple[str, ...]]:
    changes: dict = {}
    changed: list[str] = []
    if current.get("Handler") != package.handler:
        changes["Handler"] = package.handler
        changed.append("Handler")
    if current.get("Runtime") != package.runtime:
        changes["Runtime"] = package.runtime
        changed.append("Runtime")
    if connection_url is not None:
        variables = dict((current.get("Environment") or {}).get("Variables") or {})
        if variables.get(CONNECTION_VARIABLE) != connection_url:
            # The API replaces the whole set: keep the function's other variables.
            variables[CONNECTION_VARIABLE] = connection_url
            changes["Environment"] = {"Variables": variables}
            changed.append(CONNECTION_VARIABLE)
    return changes, tuple(changed)


@contextmanager
def _secret_kept_out(connection_url: str | None) -> Iterator[None]:
    """AWS may quote the environment it refused (Lambda's 4 KB limit error does): an AwsError
    raised here names the URL only masked, and never its password."""
    try:
        yield
    except AwsError as e:
        if connection_url is None:
            raise
        raise AwsError(_scrub(str(e), connection_url), e.code) from None


def _scrub(message: str, connection_url: str) -> str:
    """The message with the URL masked and its password, in any spelling AWS may echo, as ****."""
    try:
        masked = urls.mask(connection_url)
    except ConfigError:
        masked = MASK
    replacements = {connection_url: masked}
    for password in urls.password_spellings(connection_url):
        replacements[password] = MASK
    # A JSON document quoting the variables escapes quotes and backslashes.
    for secret, shown in list(replacements.items()):
        replacements.setdefault(json.dumps(secret)[1:-1], json.dumps(shown)[1:-1])
    return scrub(message, replacements)


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
