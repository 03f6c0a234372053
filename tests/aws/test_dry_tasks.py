"""`inv --dry` (and each task's --dry-run) on the AWS write tasks: the plan, no question, and
the moto account and dist/ exactly as they were."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from cruddur.lambda_build import package as lambda_package
from tests.aws.test_lambda_deploy import FUNCTION, create_function, database_network, iam_instance
from tests.aws_support import REGION, server_client


def endpoint(moto_url: str) -> dict:
    return {"endpoint_url": moto_url, "region_name": REGION, "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def aws_state(moto_url: str) -> dict:
    """Everything these tasks could change in the moto account, and whether the default zip exists."""
    rds, functions, iam, idp = (server_client(moto_url, s) for s in ("rds", "lambda", "iam", "cognito-idp"))
    state = {
        "instances": {i["DBInstanceIdentifier"]: i["DBInstanceStatus"] for i in rds.describe_db_instances()["DBInstances"]},
        "snapshots": [s["DBSnapshotIdentifier"] for s in rds.describe_db_snapshots()["DBSnapshots"]],
        "functions": {},
        "role policies": {
            role["RoleName"]: sorted(iam.list_role_policies(RoleName=role["RoleName"])["PolicyNames"]) for role in iam.list_roles()["Roles"]
        },
        "triggers": {
            p["Id"]: idp.describe_user_pool(UserPoolId=p["Id"])["UserPool"].get("LambdaConfig")
            for p in idp.list_user_pools(MaxResults=60)["UserPools"]
        },
        "zip": lambda_package.DEFAULT_OUTPUT.exists(),
    }
    for function in functions.list_functions()["Functions"]:
        name = function["FunctionName"]
        try:
            policy = functions.get_policy(FunctionName=name)["Policy"]
        except functions.exceptions.ResourceNotFoundException:
            policy = None
        state["functions"][name] = {
            **{key: function.get(key) for key in ("CodeSha256", "Handler", "Runtime", "Environment", "Timeout")},
            "concurrency": functions.get_function_concurrency(FunctionName=name).get("ReservedConcurrentExecutions"),
            "policy": policy,
        }
    return state


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    setup: Callable[[str], dict]  # moto's URL -> the variables the task needs
    plan: str  # how a line of stdout that names the thing starts
    lambda_build: bool = False  # the task builds the zip: wheels from the run's cache, no zip in the checkout
    ends: str = ""  # and how it ends
    also: str = ""  # a line the plan holds as well


def nothing(moto_url: str) -> dict:
    return {"RDS_MASTER_PASSWORD": ""}  # and stdin is no terminal: a real run would refuse to create


def network(moto_url: str) -> dict:
    """The database in its VPC, and the Lambda's role (LAMBDA_ROLE_ARN)."""
    return {"LAMBDA_ROLE_ARN": database_network(endpoint(moto_url))["role"]}


def stopped(moto_url: str) -> dict:
    found = network(moto_url)
    server_client(moto_url, "rds").stop_db_instance(DBInstanceIdentifier="cruddur-db-instance")
    return found


def function(moto_url: str) -> dict:
    """What the console click-through left: the function with placeholder code, in its own role."""
    create_function(endpoint(moto_url), runtime="python3.9")
    return {}


def old_function(moto_url: str) -> dict:
    """The old function beside the database it would be pointed at (--set-env)."""
    iam_instance(endpoint=endpoint(moto_url))
    return function(moto_url)


def pool(moto_url: str) -> dict:
    function(moto_url)
    pool_id = server_client(moto_url, "cognito-idp").create_user_pool(PoolName="cruddur")["UserPool"]["Id"]
    return {"AWS_COGNITO_USER_POOL_ID": pool_id}


CASES = {
    "create a missing instance": Case(
        ("rds.create", "--engine-version", "16.4", "--no-publicly-accessible"),
        nothing,
        "would create cruddur-db-instance: postgres 16.4 (without Extended Support), db.t3.micro, 20 GB gp2, in us-east-1a",
        also="  but no RDS_MASTER_PASSWORD is set and there is no terminal to ask for one: the real run would stop there",
    ),
    "create an existing instance": Case(
        ("rds.create",), network, "cruddur-db-instance already exists (postgres ", ends="): available; would be left as it is"
    ),
    "stop": Case(("rds.stop",), network, "would stop cruddur-db-instance (now: available)"),
    "start": Case(("rds.start",), stopped, "would start cruddur-db-instance (now: stopped)"),
    "delete": Case(("rds.delete",), network, "would delete RDS instance cruddur-db-instance (available) at "),
    "package": Case(("lambda.package",), nothing, "would build the zip for ", ends="cruddur-post-confirmation.zip", lambda_build=True),
    "deploy a new function": Case(
        ("lambda.deploy", "--set-env"), network, f"{FUNCTION}: code would be created (CodeSha256 ", lambda_build=True
    ),
    "deploy over an old function": Case(
        ("lambda.deploy", "--set-env"), old_function, f"{FUNCTION}: code would be updated (CodeSha256 ", lambda_build=True
    ),
    "attach": Case(("lambda.attach",), pool, f"{FUNCTION}: Cognito pool {REGION}_", ends=" would be allowed to invoke it"),
}


# Each task's own --dry-run beside inv --dry; a new function's deploy (a zip built each time) with inv --dry only.
RUNS = [(name, flag) for name in CASES for flag in ("inv --dry", "--dry-run") if flag == "inv --dry" or name != "deploy a new function"]


@pytest.mark.parametrize("case, flag", [(CASES[name], flag) for name, flag in RUNS], ids=[f"{name}-{flag}" for name, flag in RUNS])
def test_a_dry_run_shows_the_plan_asks_nothing_and_changes_nothing(request, run_task, moto_url, case, flag):
    if case.lambda_build:
        request.getfixturevalue("lambda_build_defaults")
    env = {"AWS_ENDPOINT_URL": moto_url, **case.setup(moto_url)}
    before = aws_state(moto_url)
    args = ("--dry", *case.args) if flag == "inv --dry" else (*case.args, "--dry-run")

    result = run_task(*args, env=env)

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == "dry run: nothing changed"
    assert any(line.startswith(case.plan) and line.endswith(case.ends) for line in lines), result.stdout
    assert not case.also or case.also in lines, result.stdout
    assert aws_state(moto_url) == before
