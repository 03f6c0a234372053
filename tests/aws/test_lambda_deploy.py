"""lambda.deploy against moto: in-process for the library, a local moto server for `inv`."""

from __future__ import annotations

import io
import zipfile

import boto3
import pytest

from cruddur.aws import lambda_deploy
from cruddur.config import Settings
from cruddur.errors import AwsError, ConfigError
from cruddur.lambda_build.defaults import DEFAULT_RUNTIME
from tests.aws_support import create_instance, server_client
from tests.helpers import assert_one_line_error
from tests.lambda_support import FinishingUpdateLambda

REGION = "us-east-1"
FUNCTION = "cruddur-post-confirmation"


def _placeholder_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.py", "def handler(event, context):\n    return event\n")
    return buffer.getvalue()


def create_function(session_or_kwargs: dict, name: str = FUNCTION, runtime: str = "python3.11", variables=None) -> None:
    """What the console click-through left behind: a function with placeholder code."""
    iam = boto3.client("iam", **session_or_kwargs)
    role = iam.create_role(
        RoleName=f"{name}-role",
        AssumeRolePolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow",'
        '"Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}',
    )["Role"]["Arn"]
    boto3.client("lambda", **session_or_kwargs).create_function(
        FunctionName=name,
        Runtime=runtime,
        Role=role,
        Handler="index.handler",
        Code={"ZipFile": _placeholder_zip()},
        Environment={"Variables": variables or {}},
    )


@pytest.fixture
def aws(mocked_aws, monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL_LAMBDA", raising=False)
    return boto3.client("lambda", region_name=REGION)


def test_deploy_uploads_the_package_and_aligns_handler_and_runtime(aws, lambda_zip):
    create_function({"region_name": REGION}, runtime="python3.9")

    deployment = lambda_deploy.deploy(lambda_zip)

    config = aws.get_function_configuration(FunctionName=FUNCTION)
    assert config["CodeSha256"] == lambda_zip.code_sha256
    assert config["Handler"] == "cruddur_post_confirmation.lambda_handler"
    assert config["Runtime"] == lambda_zip.runtime
    assert (deployment.code, deployment.changed) == ("updated", ("Handler", "Runtime"))


def test_a_second_deploy_of_the_same_bytes_is_skipped(aws, lambda_zip):
    create_function({"region_name": REGION})
    lambda_deploy.deploy(lambda_zip)
    modified = aws.get_function_configuration(FunctionName=FUNCTION)["LastModified"]

    again = lambda_deploy.deploy(lambda_zip)

    assert (again.code, again.changed) == ("unchanged", ())
    assert aws.get_function_configuration(FunctionName=FUNCTION)["LastModified"] == modified


def iam_instance(identifier: str = "cruddur-db-instance", iam: bool = True, endpoint: dict | None = None, **options) -> dict:
    """An RDS instance as rds.create makes it (IAM authentication on unless `iam` is False)."""
    rds = boto3.client("rds", **(endpoint or {"region_name": REGION}))
    return create_instance(rds, identifier, DBName="cruddur", EnableIAMDatabaseAuthentication=iam, **options)


def role_policy(function: str = FUNCTION, **kwargs) -> dict:
    role = boto3.client("lambda", region_name=REGION, **kwargs).get_function_configuration(FunctionName=function)["Role"].rsplit("/", 1)[1]
    return boto3.client("iam", region_name=REGION, **kwargs).get_role_policy(RoleName=role, PolicyName=lambda_deploy.POLICY_NAME)[
        "PolicyDocument"
    ]


def test_the_database_settings_replace_the_master_url_and_hold_no_password(aws, lambda_zip):
    create_function({"region_name": REGION}, variables={"LOG_LEVEL": "debug", "CONNECTION_URL": "postgresql://root:s3cr3t@db/cruddur"})
    item = iam_instance()
    access = lambda_deploy.database_access(boto3.client("rds", region_name=REGION), "cruddur-db-instance")

    deployment = lambda_deploy.deploy(lambda_zip, database=access)

    variables = aws.get_function_configuration(FunctionName=FUNCTION)["Environment"]["Variables"]
    assert variables == {
        "LOG_LEVEL": "debug",
        "DB_HOST": item["Endpoint"]["Address"],
        "DB_PORT": "5432",
        "DB_NAME": "cruddur",
        "DB_USER": "cruddur_signup",
        "DB_AUTH": "iam",
    }
    assert "CONNECTION_URL removed" in deployment.changed
    assert "s3cr3t" not in repr(deployment)
    again = lambda_deploy.deploy(lambda_zip, database=access)
    assert (again.changed, again.policy_changed) == ((), False)


def test_the_execution_role_may_connect_as_the_signup_user_only(aws, lambda_zip):
    create_function({"region_name": REGION})
    item = iam_instance()
    access = lambda_deploy.database_access(boto3.client("rds", region_name=REGION), "cruddur-db-instance")

    assert lambda_deploy.deploy(lambda_zip, database=access).policy_changed

    account = item["DBInstanceArn"].split(":")[4]
    assert role_policy() == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "rds-db:connect",
                "Resource": f"arn:aws:rds-db:{REGION}:{account}:dbuser:{item['DbiResourceId']}/cruddur_signup",
            }
        ],
    }


def test_an_instance_without_iam_authentication_says_how_to_turn_it_on(aws):
    iam_instance("no-iam", iam=False)

    with pytest.raises(AwsError, match="no-iam has IAM database authentication off; turn it on with: aws rds modify-db-instance"):
        lambda_deploy.database_access(boto3.client("rds", region_name=REGION), "no-iam")


def test_reserved_concurrency_is_set_then_left_alone(aws, lambda_zip):
    create_function({"region_name": REGION})

    first = lambda_deploy.deploy(lambda_zip, reserved_concurrency=5)
    second = lambda_deploy.deploy(lambda_zip, reserved_concurrency=5)
    third = lambda_deploy.deploy(lambda_zip, reserved_concurrency=3)

    assert [(d.concurrency, d.concurrency_changed) for d in (first, second, third)] == [(5, True), (5, False), (3, True)]
    assert aws.get_function_concurrency(FunctionName=FUNCTION)["ReservedConcurrentExecutions"] == 3


def test_a_missing_function_is_one_line_with_the_aws_error_code(aws, lambda_zip):
    with pytest.raises(AwsError) as raised:
        lambda_deploy.deploy(lambda_zip, function="no-such-function")

    message = str(raised.value)
    assert message.startswith("AWS GetFunction failed: ResourceNotFoundException:")
    assert message.endswith("(create the function first, or let lambda.deploy create it)")
    assert "\n" not in message


def test_no_region_is_a_clear_error(monkeypatch, lambda_zip):
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")

    with pytest.raises(AwsError, match=r"no AWS region \(NoRegionError\): export AWS_DEFAULT_REGION="):
        lambda_deploy.deploy(lambda_zip)


# `inv lambda.deploy` as a user runs it, against a moto server on 127.0.0.1.


def test_inv_lambda_deploy_set_env_points_the_function_at_rds_with_iam_and_bounds_it(run_task, lambda_build_defaults, moto_url):
    endpoint = {"endpoint_url": moto_url, "region_name": REGION, "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    create_function(endpoint, runtime="python3.9", variables={"CONNECTION_URL": "postgresql://root:s3cr3t@db/cruddur"})
    item = iam_instance(endpoint=endpoint)
    env = {"AWS_ENDPOINT_URL": moto_url}

    first = run_task("lambda.deploy", "--set-env", env=env)
    second = run_task("lambda.deploy", "--set-env", "--concurrency", "2", env=env)

    assert first.returncode == 0, first.stderr
    assert "configuration updated: Handler, Runtime, DB_HOST, DB_PORT, DB_NAME, DB_USER, DB_AUTH, CONNECTION_URL removed" in first.stdout
    assert f"its role now allows rds-db:connect as cruddur_signup (arn:aws:rds-db:{REGION}:" in first.stdout
    assert f"connects to {item['Endpoint']['Address']}:5432/cruddur with IAM tokens over TLS, no password" in first.stdout
    assert "reserved concurrency set to 5: at most 5 database connections from sign-ups" in first.stdout
    assert "next: inv db.roles --prod" in first.stderr
    assert second.returncode == 0, second.stderr
    assert "configuration unchanged" in second.stdout and "its role allows rds-db:connect" in second.stdout
    assert "reserved concurrency set to 2" in second.stdout
    config = boto3.client("lambda", **endpoint).get_function_configuration(FunctionName=FUNCTION)
    assert "CONNECTION_URL" not in config["Environment"]["Variables"]
    assert config["Runtime"] == DEFAULT_RUNTIME
    assert boto3.client("lambda", **endpoint).get_function_concurrency(FunctionName=FUNCTION)["ReservedConcurrentExecutions"] == 2
    for result in (first, second):
        assert "s3cr3t" not in result.stdout + result.stderr


def test_inv_lambda_deploy_concurrency_must_be_a_whole_number_of_one_or_more(run_task):
    assert_one_line_error(run_task("lambda.deploy", "--concurrency", "0"), "--concurrency must be a number of 1 or more")


def test_inv_lambda_deploy_creating_without_a_role_is_one_line(run_task, lambda_build_defaults, moto_url):
    result = run_task("lambda.deploy", "--name", "nope", env={"AWS_ENDPOINT_URL": moto_url})

    line = assert_one_line_error(result, "error: LAMBDA_ROLE_ARN is not set: export LAMBDA_ROLE_ARN=")
    assert line.endswith("; or pass --role-arn (the function's execution role, needed to create it)")
    functions = server_client(moto_url, "lambda").list_functions()["Functions"]
    assert functions == []
    assert not lambda_build_defaults.exists()  # said before the build, not after it


@pytest.mark.parametrize("name, attach", [(FUNCTION, "next: inv lambda.attach"), ("other-fn", "next: inv lambda.attach --name other-fn")])
def test_inv_lambda_deploy_creates_a_missing_function_then_names_the_next_step(run_task, lambda_build_defaults, moto_url, name, attach):
    network = database_network(
        {"endpoint_url": moto_url, "region_name": REGION, "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    )
    result = run_task("lambda.deploy", "--name", name, "--role-arn", network["role"], env={"AWS_ENDPOINT_URL": moto_url})
    assert result.returncode == 0, result.stderr
    assert f"{name}: code created (CodeSha256 " in result.stdout
    assert result.stdout.splitlines()[-1] == attach
    assert server_client(moto_url, "lambda").get_function(FunctionName=name)["Configuration"]["Role"] == network["role"]


def test_an_update_in_progress_is_waited_out_then_compared_again(lambda_zip):
    endpoint = FinishingUpdateLambda(lambda_zip.code_sha256, lambda_zip.runtime)
    try:
        deployment = lambda_deploy.deploy(lambda_zip, lambda_client=endpoint.client())
    finally:
        endpoint.close()

    # The update that was running left these very bytes: nothing to upload.
    assert endpoint.code_uploads == 0 and endpoint.configuration_updates == 0
    assert (deployment.code, deployment.changed) == ("unchanged", ())


# Creating the function in the database's VPC, then attaching it to the user pool.


def database_network(region_kwargs: dict) -> dict:
    """A VPC with two subnets, a security group, and an RDS instance in them."""
    ec2 = boto3.client("ec2", **region_kwargs)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{REGION}{zone}")["Subnet"]["SubnetId"]
        for i, zone in enumerate("ab")
    ]
    group = ec2.create_security_group(GroupName="cruddur-db", Description="db", VpcId=vpc)["GroupId"]
    rds = boto3.client("rds", **region_kwargs)
    rds.create_db_subnet_group(DBSubnetGroupName="cruddur-db", DBSubnetGroupDescription="db", SubnetIds=subnets)
    iam_instance(endpoint=region_kwargs, DBSubnetGroupName="cruddur-db", VpcSecurityGroupIds=[group])
    role = boto3.client("iam", **region_kwargs).create_role(RoleName="cruddur-post-confirmation-role", AssumeRolePolicyDocument="{}")[
        "Role"
    ]["Arn"]
    return {"subnets": subnets, "group": group, "role": role}


def test_deploy_creates_a_missing_function_in_the_databases_vpc(aws, lambda_zip):
    network = database_network({"region_name": REGION})

    def new_function():
        subnets, groups = lambda_deploy.database_vpc(boto3.client("rds", region_name=REGION), "cruddur-db-instance")
        return lambda_deploy.NewFunction(network["role"], subnets, groups)

    access = lambda_deploy.database_access(boto3.client("rds", region_name=REGION), "cruddur-db-instance")
    deployment = lambda_deploy.deploy(lambda_zip, database=access, new_function=new_function)

    config = aws.get_function_configuration(FunctionName=FUNCTION)
    assert (deployment.code, deployment.changed) == ("created", ("DB_HOST", "DB_PORT", "DB_NAME", "DB_USER", "DB_AUTH"))
    assert deployment.policy_changed
    assert config["CodeSha256"] == lambda_zip.code_sha256
    assert (config["Runtime"], config["Handler"], config["Timeout"]) == (lambda_zip.runtime, lambda_zip.handler, 5)
    assert config["Architectures"] == [lambda_zip.architecture] and config["Role"] == network["role"]
    assert sorted(config["VpcConfig"]["SubnetIds"]) == sorted(network["subnets"])
    assert config["VpcConfig"]["SecurityGroupIds"] == [network["group"]]
    assert config["Environment"]["Variables"] == access.variables()
    again = lambda_deploy.deploy(lambda_zip, database=access, new_function=new_function)
    assert (again.code, again.changed, again.policy_changed) == ("unchanged", (), False)


def test_an_existing_function_never_asks_for_creation_settings(aws, lambda_zip):
    create_function({"region_name": REGION})

    def new_function():
        raise AssertionError("asked for creation settings")

    assert lambda_deploy.deploy(lambda_zip, new_function=new_function).code == "updated"


def test_the_role_comes_from_the_flag_then_lambda_role_arn_else_one_line():
    settings = Settings.from_env({"LAMBDA_ROLE_ARN": "arn:aws:iam::123456789012:role/from-env"})

    assert lambda_deploy.role_arn(settings, "arn:aws:iam::123456789012:role/flag") == "arn:aws:iam::123456789012:role/flag"
    assert lambda_deploy.role_arn(settings, None) == "arn:aws:iam::123456789012:role/from-env"
    with pytest.raises(ConfigError, match=r"^LAMBDA_ROLE_ARN is not set: .*; or pass --role-arn"):
        lambda_deploy.role_arn(Settings.from_env({}), None)


def test_an_instance_without_a_subnet_group_asks_for_the_flags(aws):
    rds = boto3.client("rds", region_name=REGION)
    iam_instance("bare")

    with pytest.raises(AwsError, match=r"RDS instance bare shows no (subnets|VPC security group); pass --subnet-ids"):
        lambda_deploy.database_vpc(rds, "bare")


def test_inv_lambda_deploy_creates_then_attach_wires_the_pool_twice_without_change(run_task, lambda_build_defaults, moto_url):
    endpoint = {"endpoint_url": moto_url, "region_name": REGION, "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    network = database_network(endpoint)
    idp = boto3.client("cognito-idp", **endpoint)
    pool = idp.create_user_pool(PoolName="cruddur", LambdaConfig={"PreSignUp": "arn:aws:lambda:us-east-1:123456789012:function:pre"})[
        "UserPool"
    ]
    env = {"AWS_ENDPOINT_URL": moto_url, "LAMBDA_ROLE_ARN": network["role"], "AWS_COGNITO_USER_POOL_ID": pool["Id"]}

    created = run_task("lambda.deploy", "--subnet-ids", network["subnets"][0], env=env)
    first = run_task("lambda.attach", env=env)
    second = run_task("lambda.attach", env=env)

    assert created.returncode == 0, created.stderr
    assert f"{FUNCTION}: code created (CodeSha256 " in created.stdout
    config = boto3.client("lambda", **endpoint).get_function_configuration(FunctionName=FUNCTION)
    assert config["VpcConfig"]["SubnetIds"] == [network["subnets"][0]]  # the flag overrides the instance's
    assert config["VpcConfig"]["SecurityGroupIds"] == [network["group"]]
    assert first.returncode == 0, first.stderr
    assert f"{pool['Id']}: post-confirmation trigger set to {config['FunctionArn']}" in first.stdout
    assert f"{FUNCTION}: Cognito pool {pool['Id']} may now invoke it" in first.stdout
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == f"{pool['Id']}: {FUNCTION} is already its post-confirmation trigger; nothing to do"
    triggers = idp.describe_user_pool(UserPoolId=pool["Id"])["UserPool"]["LambdaConfig"]
    assert triggers == {"PreSignUp": "arn:aws:lambda:us-east-1:123456789012:function:pre", "PostConfirmation": config["FunctionArn"]}


def test_lambda_attach_without_a_pool_is_one_line(run_task):
    result = run_task("lambda.attach")

    assert_one_line_error(result, "error: AWS_COGNITO_USER_POOL_ID is not set: export AWS_COGNITO_USER_POOL_ID=")


def test_a_missing_instance_says_how_to_create_it(aws):
    with pytest.raises(
        AwsError,
        match=r"^there is no RDS instance gone in us-east-1 \(DBInstanceNotFound\); create it with: inv rds.create --identifier gone$",
    ):
        lambda_deploy.database_vpc(boto3.client("rds", region_name=REGION), "gone")
