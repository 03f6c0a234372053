"""lambda.deploy against moto: in-process for the library, a local moto server for `inv`."""

from __future__ import annotations

import io
import zipfile

import boto3
import pytest
from moto import mock_aws

from cruddur.aws import lambda_deploy
from cruddur.errors import AwsError
from tests.helpers import assert_one_line_error
from tests.lambda_support import EnvironmentTooLargeLambda


REGION = "us-east-1"
FUNCTION = "cruddur-post-confirmation"
SECRET_URL = "postgresql://cruddurroot:s3cr3t-Pa55@cruddur-db.example.us-east-1.rds.amazonaws.com:5432/cruddur"


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
def aws(monkeypatch):
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_LAMBDA"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield boto3.client("lambda", region_name=REGION)


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


def test_set_env_puts_the_url_in_connection_url_and_keeps_other_variables(aws, lambda_zip):
    create_function({"region_name": REGION}, variables={"LOG_LEVEL": "debug"})

    deployment = lambda_deploy.deploy(lambda_zip, connection_url=SECRET_URL)

    variables = aws.get_function_configuration(FunctionName=FUNCTION)["Environment"]["Variables"]
    assert variables == {"LOG_LEVEL": "debug", "CONNECTION_URL": SECRET_URL}
    assert "CONNECTION_URL" in deployment.changed
    assert SECRET_URL not in repr(deployment)
    assert lambda_deploy.deploy(lambda_zip, connection_url=SECRET_URL).changed == ()


def test_a_missing_function_is_one_line_with_the_aws_error_code(aws, lambda_zip):
    with pytest.raises(AwsError) as raised:
        lambda_deploy.deploy(lambda_zip, function="no-such-function")

    message = str(raised.value)
    assert message.startswith("AWS GetFunction failed: ResourceNotFoundException:")
    assert message.endswith("(create the function first; lambda.deploy only updates it)")
    assert "create the function first" in message
    assert "\n" not in message


def test_no_region_is_a_clear_error(monkeypatch, lambda_zip):
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")

    with pytest.raises(AwsError, match=r"no AWS region \(NoRegionError\): export AWS_DEFAULT_REGION="):
        lambda_deploy.deploy(lambda_zip)


@pytest.mark.parametrize(
    "url, secrets",
    [
        (SECRET_URL, ["s3cr3t-Pa55"]),
        ("postgresql://cruddurroot:pa%40ss%2Fword%22@db.example.com/cruddur", ["pa%40ss%2Fword%22", 'pa@ss/word"', "ss/word"]),
    ],
    ids=["plain password", "percent-encoded password"],
)
def test_an_aws_error_quoting_the_environment_never_shows_the_url_or_its_password(lambda_zip, url, secrets):
    endpoint = EnvironmentTooLargeLambda(lambda_zip.code_sha256, lambda_zip.runtime)
    try:
        with pytest.raises(AwsError) as raised:
            lambda_deploy.deploy(lambda_zip, connection_url=url, lambda_client=endpoint.client())
    finally:
        endpoint.close()

    message = str(raised.value)
    assert endpoint.configuration_updates == 1
    assert raised.value.code == "InvalidParameterValueException"
    assert message.startswith("AWS UpdateFunctionConfiguration failed: InvalidParameterValueException: Lambda was")
    assert '"CONNECTION_URL":"postgresql://cruddurroot:****@' in message
    for secret in [url, *secrets]:
        assert secret not in message
    assert raised.value.__cause__ is None and "\n" not in message


# `inv lambda.deploy` as a user runs it, against a moto server on 127.0.0.1.


def test_inv_lambda_deploy_updates_then_says_unchanged_and_never_prints_the_url(inv, moto_url):
    endpoint = {"endpoint_url": moto_url, "region_name": REGION,
                "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}  # fmt: skip
    create_function(endpoint)
    env = {"AWS_ENDPOINT_URL": moto_url, "PROD_CONNECTION_URL": SECRET_URL}

    first = inv("lambda.deploy", "--set-env", env=env, timeout=300)
    second = inv("lambda.deploy", "--set-env", env=env, timeout=300)

    assert first.returncode == 0, first.stderr
    assert f"{FUNCTION}: code updated (CodeSha256 " in first.stdout
    assert "configuration updated: Handler, Runtime, CONNECTION_URL (from PROD_CONNECTION_URL)" in first.stdout
    assert second.returncode == 0, second.stderr
    assert f"{FUNCTION}: code unchanged (CodeSha256 " in second.stdout
    assert f"{FUNCTION}: configuration unchanged" in second.stdout
    for result in (first, second):
        assert "s3cr3t" not in result.stdout + result.stderr
    config = boto3.client("lambda", **endpoint).get_function_configuration(FunctionName=FUNCTION)
    assert config["Environment"]["Variables"]["CONNECTION_URL"] == SECRET_URL
    assert config["Runtime"] == "python3.12"
    assert config["CodeSha256"] in first.stdout


def test_inv_lambda_deploy_set_env_without_prod_connection_url_names_the_variable(inv):
    result = inv("lambda.deploy", "--set-env")

    assert result.returncode == 1
    assert result.stderr.startswith("error: PROD_CONNECTION_URL is not set: export PROD_CONNECTION_URL=")


def test_inv_lambda_deploy_to_a_missing_function_is_one_line(inv, moto_url):
    result = inv("lambda.deploy", "--name", "nope", env={"AWS_ENDPOINT_URL": moto_url}, timeout=300)

    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(
        "error: AWS GetFunction failed: ResourceNotFoundException:"
    )


def test_inv_lambda_deploy_refused_environment_is_one_line_without_the_password(inv, environment_too_large_lambda):
    env = {"AWS_ENDPOINT_URL": environment_too_large_lambda.url, "PROD_CONNECTION_URL": SECRET_URL}

    result = inv("lambda.deploy", "--set-env", env=env, timeout=300)

    line = assert_one_line_error(result, "error: AWS UpdateFunctionConfiguration failed: InvalidParameterValueException:")
    assert "postgresql://cruddurroot:****@cruddur-db.example" in line
    assert "s3cr3t" not in result.stdout + result.stderr
