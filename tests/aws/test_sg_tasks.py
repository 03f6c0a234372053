"""`inv sg.*` as a user runs it, against moto's server mode and IP services on 127.0.0.1: in-process
(run_task), and as a subprocess for a sample of failures and the workspace start-up."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.aws_support import GOOD_IP, OLD_CIDR, ThrottlingAws, add_rule, foreign_rules, make_db_group, rule_state, server_client
from tests.helpers import ROOT, assert_one_line_error


@pytest.fixture
def account(moto_url, ip_services):
    """A moto account holding the bootcamp's db group, and the env that points `inv` at it."""
    ec2 = server_client(moto_url, "ec2")
    group = make_db_group(ec2)
    env = {
        "AWS_ENDPOINT_URL": moto_url,
        "DB_SG_ID": group.group_id,
        "DB_SG_RULE_ID": group.rule_id,
        "IP_LOOKUP_URLS": ip_services.urls("good"),
        "COLUMNS": "200",
    }
    return ec2, group, env


def test_update_rewrites_the_rule_then_finds_nothing_to_do(run_task, account, ip_services):
    ec2, group, env = account
    result = run_task("sg.update", env=env)
    assert result.returncode == 0, result.stderr
    assert f"tcp 5432 from {OLD_CIDR} (GITPOD) -> tcp 5432 from {GOOD_IP}/32 (GITPOD)" in result.stdout
    assert f"IP from {ip_services.url('good')}" in result.stdout
    assert rule_state(ec2, group.rule_id)["CidrIpv4"] == f"{GOOD_IP}/32"

    again = run_task("sg.update", env=env)
    assert again.returncode == 0, again.stderr
    assert "nothing to do" in again.stdout


def test_update_with_gitpod_ip_and_a_description(run_task, account, ip_services):
    ec2, group, env = account
    result = run_task("sg.update", "--description", "laptop", env={**env, "GITPOD_IP": "198.51.100.99"})
    assert result.returncode == 0, result.stderr
    assert "(IP from GITPOD_IP)" in result.stdout
    assert rule_state(ec2, group.rule_id) == {
        "IpProtocol": "tcp",
        "FromPort": 5432,
        "ToPort": 5432,
        "CidrIpv4": "198.51.100.99/32",
        "CidrIpv6": None,
        "Description": "laptop",
    }
    assert ip_services.hits == []


def test_dry_run_shows_the_change_and_makes_none(run_task, account):
    ec2, group, env = account
    result = run_task("sg.update", "--dry-run", env=env)
    assert result.returncode == 0, result.stderr
    assert f"-> tcp 5432 from {GOOD_IP}/32" in result.stdout and "dry run: nothing changed" in result.stdout
    assert rule_state(ec2, group.rule_id)["CidrIpv4"] == OLD_CIDR


@pytest.mark.parametrize("services", [("html",), ("ipv6", "private"), ("fail", "garbage", "empty")])
def test_no_usable_answer_changes_nothing(run_task, account, ip_services, services):
    ec2, group, env = account
    result = run_task("sg.update", env={**env, "IP_LOOKUP_URLS": ip_services.urls(*services)})
    assert_one_line_error(result, "could not find this workspace's public IPv4 address")
    assert rule_state(ec2, group.rule_id)["CidrIpv4"] == OLD_CIDR


@pytest.mark.parametrize("gitpod_ip", ["0.0.0.0", "2001:db8::1", "10.0.0.5", "<html>"])
def test_a_bad_gitpod_ip_changes_nothing(run_task, account, gitpod_ip):
    ec2, group, env = account
    result = run_task("sg.update", env={**env, "GITPOD_IP": gitpod_ip})
    assert_one_line_error(result, "GITPOD_IP is unusable")
    assert rule_state(ec2, group.rule_id)["CidrIpv4"] == OLD_CIDR


def test_missing_variables_are_named_before_any_lookup(run_task, account, ip_services):
    _, _, env = account
    result = run_task("sg.update", env={**env, "DB_SG_ID": ""})
    assert_one_line_error(result, "DB_SG_ID is set but empty (did the command that set it fail?): export DB_SG_ID=sg-")
    assert ip_services.hits == []


def test_an_unknown_rule_is_one_line_with_the_aws_code(run_task, account):
    ec2, group, env = account
    result = run_task("sg.update", env={**env, "DB_SG_RULE_ID": "sgr-0123456789abcdef0"})
    assert_one_line_error(result, "InvalidSecurityGroupRuleId.NotFound", "sgr-0123456789abcdef0")
    assert rule_state(ec2, group.rule_id)["CidrIpv4"] == OLD_CIDR


def test_an_unknown_group_is_one_line_with_the_aws_code(run_task, account):
    _, _, env = account
    result = run_task("sg.show", env={**env, "DB_SG_ID": "sg-0123456789abcdef0"})
    assert_one_line_error(result, "InvalidGroup.NotFound")


def test_no_credentials_is_one_line(inv, account, tmp_path):
    ec2, group, env = account
    nowhere = str(tmp_path / "missing")
    no_credentials = {
        "AWS_ACCESS_KEY_ID": "",
        "AWS_SECRET_ACCESS_KEY": "",
        "AWS_SHARED_CREDENTIALS_FILE": nowhere,
        "AWS_CONFIG_FILE": nowhere,
    }
    result = inv("sg.update", env={**env, **no_credentials})
    assert_one_line_error(result, "no AWS credentials (NoCredentialsError: Unable to locate credentials)")
    assert rule_state(ec2, group.rule_id)["CidrIpv4"] == OLD_CIDR


def test_throttling_is_one_line_after_boto3_retried(run_task, account, throttling_aws: ThrottlingAws):
    _, _, env = account
    result = run_task("sg.update", env={**env, "AWS_ENDPOINT_URL": throttling_aws.url, "AWS_MAX_ATTEMPTS": "2"})
    assert_one_line_error(result, "RequestLimitExceeded: Request limit exceeded.", "throttled")
    assert throttling_aws.calls == 2


def test_ip_prints_the_address_and_its_source(run_task, ip_services):
    result = run_task("sg.ip", env={"IP_LOOKUP_URLS": ip_services.urls("html", "good")})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{GOOD_IP} (from {ip_services.url('good')})"
    from_gitpod = run_task("sg.ip", env={"GITPOD_IP": " 198.51.100.99 "})
    assert from_gitpod.stdout.strip() == "198.51.100.99 (from GITPOD_IP)"


def test_show_marks_the_managed_rule(run_task, account):
    _, group, env = account
    result = run_task("sg.show", env=env)
    assert result.returncode == 0, result.stderr
    managed = next(line for line in result.stdout.splitlines() if group.rule_id in line)
    other = next(line for line in result.stdout.splitlines() if group.other_rule_id in line)
    assert "*" in managed and OLD_CIDR in managed and "5432" in managed
    assert "*" not in other and "192.0.2.0/24" in other
    assert "the rule sg.update manages" in result.stdout


def test_show_prints_a_rule_description_as_text_with_a_bidi_override_escaped(run_task, account):
    ec2, group, env = account
    # EC2 answers in XML, which cannot carry C0 controls; a bidi override it carries.
    described = "[red]ops[/] \u202egnp.exe"
    add_rule(
        ec2,
        group.group_id,
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "198.51.100.0/24", "Description": described}]},
    )

    result = run_task("sg.show", env=env)
    document = json.loads(run_task("sg.show", "--json", env=env).stdout)

    assert result.returncode == 0, result.stderr
    assert "\u202e" not in result.stdout
    assert "[red]ops[/] \\u202egnp.exe" in result.stdout
    assert described in {r["description"] for r in document["rules"]}


def test_show_json(run_task, account):
    _, group, env = account
    result = run_task("sg.show", "--json", env=env)
    document = json.loads(result.stdout)
    assert document["group_id"] == group.group_id
    assert document["managed_rule_id"] == group.rule_id
    assert {r["rule_id"] for r in document["rules"]} == {group.rule_id, group.other_rule_id}


def a_gp_command(folder: Path) -> str:
    """A PATH on which a `gp` command exists, as in a Gitpod workspace."""
    gp = folder / "gp"
    gp.write_text("#!/bin/sh\nexit 0\n")
    gp.chmod(0o755)
    return f"{folder}{os.pathsep}{os.environ['PATH']}"


@pytest.mark.parametrize("workspace", ["shell", "gitpod", "codespaces"])
def test_discover_prints_the_lines_to_set_and_keep_for_the_workspace(run_task, account, moto_url, tmp_path, workspace):
    ec2, group, env = account
    server_client(moto_url, "rds").create_db_instance(
        DBInstanceIdentifier="cruddur-db-instance",
        DBInstanceClass="db.t3.micro",
        Engine="postgres",
        MasterUsername="cruddurroot",
        MasterUserPassword="a-long-secret",
        AllocatedStorage=20,
        VpcSecurityGroupIds=[group.group_id],
    )
    workspace_env = {"shell": {}, "gitpod": {"PATH": a_gp_command(tmp_path)}, "codespaces": {"CODESPACES": "true"}}
    result = run_task("sg.discover", env={"AWS_ENDPOINT_URL": moto_url, **workspace_env[workspace]})
    assert result.returncode == 0, result.stderr
    keep = {
        "shell": [],
        "gitpod": [f"gp env DB_SG_ID={group.group_id}", f"gp env DB_SG_RULE_ID={group.rule_id}"],
        "codespaces": [
            f"gh secret set DB_SG_ID --user --body {group.group_id}",
            f"gh secret set DB_SG_RULE_ID --user --body {group.rule_id}",
        ],
    }
    assert result.stdout.splitlines() == [
        f"export DB_SG_ID={group.group_id}",
        f"export DB_SG_RULE_ID={group.rule_id}",
        *keep[workspace],
    ]


@pytest.mark.parametrize(
    "workspace, hint",
    [
        ("shell", "error: DB_SG_RULE_ID is set but empty (did the command that set it fail?): export DB_SG_RULE_ID=sgr-0123456789abcdef0"),
        (
            "gitpod",
            "error: DB_SG_RULE_ID is set but empty (did the command that set it fail?): export DB_SG_RULE_ID=sgr-0123456789abcdef0"
            " (to keep it: gp env DB_SG_RULE_ID=sgr-0123456789abcdef0)",
        ),
        (
            "codespaces",
            "error: DB_SG_RULE_ID is set but empty (did the command that set it fail?): export DB_SG_RULE_ID=sgr-0123456789abcdef0 (to keep it:"
            " gh secret set DB_SG_RULE_ID --user --body sgr-0123456789abcdef0, or add it in GitHub >"
            " Settings > Codespaces)",
        ),
    ],
)
def test_a_missing_setting_says_how_to_keep_it_in_the_workspace_in_use(run_task, account, tmp_path, workspace, hint):
    _, _, env = account
    workspace_env = {"shell": {}, "gitpod": {"PATH": a_gp_command(tmp_path)}, "codespaces": {"CODESPACES": "true"}}
    result = run_task("sg.update", env={**env, "DB_SG_RULE_ID": "", **workspace_env[workspace]})
    assert assert_one_line_error(result) == hint


def test_discover_of_an_unknown_instance(run_task, moto_url):
    result = run_task("sg.discover", "--identifier", "nope", env={"AWS_ENDPOINT_URL": moto_url})
    assert_one_line_error(result, "DBInstanceNotFound")


def gitpod_start():
    task = yaml.safe_load((ROOT / ".gitpod.yml").read_text())["tasks"][0]
    return task["init"], task["command"]


def devcontainer_start():
    config = json.loads((ROOT / ".devcontainer" / "devcontainer.json").read_text())
    assert config["image"].endswith("python:3.12")
    assert "/.venv/bin:" in config["remoteEnv"]["PATH"]  # where postCreateCommand installs inv
    return config["postCreateCommand"], config["postStartCommand"]


@pytest.mark.parametrize("start", [gitpod_start, devcontainer_start])
def test_a_new_workspace_runs_sg_update_and_warns_without_blocking(base_env, tmp_path, ip_services, start):
    install, every_start = start()
    assert "pip install -r requirements.txt" in install
    assert every_start.startswith("inv sg.update ||")
    # A brand-new workspace: no AWS credentials yet. The command warns and the start carries on.
    nowhere = str(tmp_path / "missing")
    env = {
        **{k: v for k, v in base_env.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")},
        "AWS_SHARED_CREDENTIALS_FILE": nowhere,
        "AWS_CONFIG_FILE": nowhere,
        "IP_LOOKUP_URLS": ip_services.urls("good"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{base_env['PATH']}",
    }
    result = subprocess.run(
        ["sh", "-c", every_start], cwd=ROOT, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "error: no AWS credentials" in result.stderr
    assert result.stdout.startswith("the workspace starts without sg.update: the error above says why")
    assert result.stdout.rstrip().endswith("once it is fixed: inv sg.update")
    assert ip_services.hits == []


@pytest.mark.parametrize("start", [gitpod_start, devcontainer_start])
def test_a_workspace_started_before_rds_create_says_so_and_blames_no_credentials(base_env, moto_url, ip_services, start):
    every_start = start()[1]
    env = {**base_env, "AWS_ENDPOINT_URL": moto_url, "IP_LOOKUP_URLS": ip_services.urls("good")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{base_env['PATH']}"
    result = subprocess.run(
        ["sh", "-c", every_start], cwd=ROOT, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().endswith("(DBInstanceNotFound); create it with: inv rds.create")
    assert "credentials" not in result.stderr
    assert "set AWS_ACCESS_KEY_ID" not in result.stdout


@pytest.mark.parametrize(
    "variable, value, fragments",
    [
        ("AWS_DEFAULT_REGION", "us east 1", ("AWS region 'us east 1' is not a region name", "AWS_DEFAULT_REGION")),
        ("AWS_ENDPOINT_URL", "localhost:4566", ("AWS_ENDPOINT_URL", "'localhost:4566' is not a URL")),
        ("AWS_MAX_ATTEMPTS", "abc", ("AWS_MAX_ATTEMPTS", "must be a whole number")),
        ("AWS_MAX_ATTEMPTS", "0", ("AWS_MAX_ATTEMPTS", "greater than or equal to 1")),
        ("AWS_RETRY_MODE", "bogus", ("AWS_RETRY_MODE", "bogus")),
    ],
)
def test_a_malformed_aws_variable_is_one_line_naming_it(run_task, account, variable, value, fragments):
    ec2, group, env = account
    result = run_task("sg.update", env={**env, "AWS_REGION": "", variable: value})
    assert_one_line_error(result, *fragments)
    assert rule_state(ec2, group.rule_id)["CidrIpv4"] == OLD_CIDR


def test_update_refuses_the_all_traffic_from_itself_rule_and_changes_nothing(run_task, account):
    ec2, group, env = account
    self_rule = foreign_rules(ec2, group.group_id)["self"]
    before = rule_state(ec2, self_rule)
    result = run_task("sg.update", env={**env, "DB_SG_RULE_ID": self_rule})
    assert_one_line_error(result, f"refusing to rewrite rule {self_rule} (all traffic from {group.group_id})", "inv sg.discover")
    assert rule_state(ec2, self_rule) == before


@pytest.fixture
def instance_group(moto_url, ip_services):
    """A brand-new instance whose group holds the bootcamp's rule, an SSH rule and rules of every other
    kind, and the env of a user with only AWS credentials (no DB_SG_ID, no DB_SG_RULE_ID)."""
    ec2 = server_client(moto_url, "ec2")
    group = make_db_group(ec2)
    foreign_rules(ec2, group.group_id)
    server_client(moto_url, "rds").create_db_instance(
        DBInstanceIdentifier="cruddur-db-instance",
        DBInstanceClass="db.t3.micro",
        Engine="postgres",
        MasterUsername="cruddurroot",
        MasterUserPassword="a-long-secret",
        AllocatedStorage=20,
        VpcSecurityGroupIds=[group.group_id],
    )
    env = {"AWS_ENDPOINT_URL": moto_url, "IP_LOOKUP_URLS": ip_services.urls("good"), "COLUMNS": "200"}
    return ec2, group, env


def inbound_state(ec2, group_id) -> dict[str, dict]:
    rules = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group_id]}])["SecurityGroupRules"]
    return {r["SecurityGroupRuleId"]: rule_state(ec2, r["SecurityGroupRuleId"]) for r in rules if not r["IsEgress"]}


def test_update_without_ids_adds_its_own_rule_then_rewrites_only_that_one(run_task, instance_group):
    ec2, group, env = instance_group
    before = inbound_state(ec2, group.group_id)

    added = run_task("sg.update", env=env)
    assert added.returncode == 0, added.stderr
    after = inbound_state(ec2, group.group_id)
    (new_id,) = set(after) - set(before)
    assert {k: after[k] for k in before} == before  # no rule it did not create has changed
    assert after[new_id] == {
        "IpProtocol": "tcp",
        "FromPort": 5432,
        "ToPort": 5432,
        "CidrIpv4": f"{GOOD_IP}/32",
        "CidrIpv6": None,
        "Description": "cruddur-ops: inv sg.update",
    }
    assert added.stdout.splitlines() == [
        f"{group.group_id} has no rule of this tool yet: adding tcp 5432 from {GOOD_IP}/32 (cruddur-ops: inv sg.update)"
        f" (IP from {env['IP_LOOKUP_URLS']})",
        f"added {new_id}",
        "next: inv rds.url",
    ]

    moved = run_task("sg.update", env={**env, "GITPOD_IP": "198.51.100.99"})
    assert moved.returncode == 0, moved.stderr
    assert f"{new_id} in {group.group_id}: tcp 5432 from {GOOD_IP}/32" in moved.stdout
    again = inbound_state(ec2, group.group_id)
    assert set(again) == set(after) and {k: again[k] for k in before} == before
    assert again[new_id]["CidrIpv4"] == "198.51.100.99/32"

    same = run_task("sg.update", env={**env, "GITPOD_IP": "198.51.100.99"})
    assert "nothing to do" in same.stdout and inbound_state(ec2, group.group_id) == again


def test_update_without_ids_takes_no_description(run_task, instance_group):
    ec2, group, env = instance_group
    before = inbound_state(ec2, group.group_id)
    result = run_task("sg.update", "--description", "laptop", env=env)
    assert_one_line_error(result, "--description needs DB_SG_ID and DB_SG_RULE_ID")
    assert inbound_state(ec2, group.group_id) == before


def test_update_without_ids_or_instance_says_how_to_create_it(run_task, moto_url, ip_services):
    result = run_task("sg.update", env={"AWS_ENDPOINT_URL": moto_url, "IP_LOOKUP_URLS": ip_services.urls("good")})
    assert_one_line_error(result, "there is no RDS instance cruddur-db-instance", "create it with: inv rds.create")
    assert ip_services.hits == []


def test_show_without_ids_marks_the_rule_sg_update_added(run_task, instance_group):
    ec2, group, env = instance_group
    assert "sg.update manages no rule here yet" in run_task("sg.show", env=env).stdout
    run_task("sg.update", env=env)
    document = json.loads(run_task("sg.show", "--json", env=env).stdout)
    managed = [r for r in document["rules"] if r["rule_id"] == document["managed_rule_id"]]
    assert [(r["source"], r["description"]) for r in managed] == [(f"{GOOD_IP}/32", "cruddur-ops: inv sg.update")]
    assert document["group_id"] == group.group_id


@pytest.mark.parametrize("setting", ["config file", "defaults mode", "CA bundle"])
def test_an_aws_setting_botocore_cannot_use_is_one_line(run_task, account, tmp_path, throttling_aws, setting):
    ec2, group, env = account
    not_ini = tmp_path / "config"
    not_ini.write_text("this is not an INI file\n")
    https_endpoint = throttling_aws.url.replace("http://", "https://")
    variables = {
        "config file": ({"AWS_CONFIG_FILE": str(not_ini)}, "ConfigParseError"),
        "defaults mode": ({"AWS_DEFAULTS_MODE": "bogus"}, "InvalidDefaultsMode"),
        "CA bundle": ({"AWS_CA_BUNDLE": str(tmp_path / "missing.pem"), "AWS_ENDPOINT_URL": https_endpoint}, "SSLError"),
    }
    extra, name = variables[setting]
    result = run_task("sg.update", env={**env, **extra})
    assert_one_line_error(result, f"({name})")
    assert rule_state(ec2, group.rule_id)["CidrIpv4"] == OLD_CIDR
