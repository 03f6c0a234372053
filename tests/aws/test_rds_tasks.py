"""`inv rds.*` as a user runs it, against moto's server mode: in-process (run_task), and as a
subprocess for a sample of failures, the password prompts and the first-time walk."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cruddur.timeouts import RDS_WAIT_TIMEOUT
from tests.aws_support import ThrottlingAws, server_client, set_instance_status
from tests.helpers import ROOT, Terminal, assert_one_line_error

PASSWORD = "s3cret:pass#word"


@pytest.fixture
def env(moto_url):
    return {"AWS_ENDPOINT_URL": moto_url, "RDS_MASTER_PASSWORD": PASSWORD, "COLUMNS": "200"}


@pytest.fixture
def server_rds(moto_url):
    """An RDS client of moto's server (the one the `inv` runs talk to), unlike aws_support's in-process `rds`."""
    return server_client(moto_url, "rds")


def instances(server_rds):
    return {i["DBInstanceIdentifier"]: i for i in server_rds.describe_db_instances()["DBInstances"]}


def assert_no_password(result):
    assert PASSWORD not in result.stdout + result.stderr
    assert "s3cret" not in result.stdout + result.stderr


@pytest.fixture
def created(run_task, env, server_rds):
    result = run_task("rds.create", env=env)
    assert result.returncode == 0, result.stderr
    return instances(server_rds)["cruddur-db-instance"]


def test_create_uses_a_current_major_and_says_what_comes_next(run_task, env, server_rds):
    result = run_task("rds.create", "--wait", env=env)
    assert result.returncode == 0, result.stderr
    assert_no_password(result)
    item = instances(server_rds)["cruddur-db-instance"]
    assert (
        item["DBInstanceClass"],
        item["EngineVersion"],
        item["DBName"],
        item["MasterUsername"],
        item["AllocatedStorage"],
        item["StorageType"],
        item["PubliclyAccessible"],
        item["StorageEncrypted"],
        item["BackupRetentionPeriod"],
        item["MultiAZ"],
        item["DeletionProtection"],
    ) == ("db.t3.micro", "17", "cruddur", "cruddurroot", 20, "gp2", True, True, 0, False, False)
    lines = result.stdout.splitlines()
    assert lines[0] == "creating cruddur-db-instance (postgres 17, db.t3.micro): available"
    assert lines[-1].startswith("next: inv sg.update")


def test_create_without_wait_says_to_wait(run_task, env, server_rds):
    first = run_task("rds.create", env=env)
    assert first.stdout.splitlines()[-1].startswith("next: inv sg.update")  # moto's instance is available at once
    set_instance_status("cruddur-db-instance", "creating")
    again = run_task("rds.create", env=env)
    assert again.stdout.splitlines() == [
        "cruddur-db-instance already exists (postgres 17): creating; left as it is",
        "next: inv rds.wait, then inv sg.update",
    ]


def test_create_with_overrides(run_task, env, server_rds):
    result = run_task(
        "rds.create",
        "--identifier",
        "cruddur-test",
        "--instance-class",
        "db.t4g.small",
        "--engine-version",
        "15.4",
        "--storage",
        "30",
        "--availability-zone",
        "us-east-1b",
        "--db-name",
        "cruddur_test",
        "--username",
        "admin_user",
        "--no-publicly-accessible",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    item = instances(server_rds)["cruddur-test"]
    assert (
        item["DBInstanceClass"],
        item["EngineVersion"],
        item["AllocatedStorage"],
        item["AvailabilityZone"],
        item["DBName"],
        item["MasterUsername"],
        item["PubliclyAccessible"],
    ) == ("db.t4g.small", "15.4", 30, "us-east-1b", "cruddur_test", "admin_user", False)


def test_create_again_reports_the_existing_instance(run_task, env, created):
    result = run_task("rds.create", env={**env, "RDS_MASTER_PASSWORD": ""})
    assert result.returncode == 0, result.stderr
    assert "cruddur-db-instance already exists (postgres 17): available; left as it is" in result.stdout


def test_create_without_a_password_or_terminal_names_the_variable(inv, env, server_rds):
    result = inv("rds.create", env={**env, "RDS_MASTER_PASSWORD": ""})
    assert_one_line_error(result, "RDS_MASTER_PASSWORD", "--manage-password")
    assert instances(server_rds) == {}


def test_create_refuses_a_password_rds_would_refuse_without_printing_it(run_task, env, server_rds):
    result = run_task("rds.create", env={**env, "RDS_MASTER_PASSWORD": "has@sign!"})
    assert_one_line_error(result, "master password")
    assert "has@sign!" not in result.stderr
    assert instances(server_rds) == {}


def test_create_with_managed_password_needs_none(run_task, env, server_rds):
    result = run_task("rds.create", "--manage-password", env={**env, "RDS_MASTER_PASSWORD": ""})
    assert result.returncode == 0, result.stderr
    assert "the master password is in Secrets Manager: arn:aws:secretsmanager:" in result.stderr
    assert instances(server_rds)["cruddur-db-instance"]["MasterUserSecret"]["SecretArn"]


@pytest.mark.parametrize("identifier", ["cruddur--db", "cruddur-", "9cruddur", "cruddur_db"])
def test_create_refuses_invalid_identifiers(run_task, env, server_rds, identifier):
    result = run_task("rds.create", "--identifier", identifier, env=env)
    assert_one_line_error(result, f"DB instance identifier {identifier!r} is invalid")
    assert instances(server_rds) == {}


def test_status_table(run_task, env, created):
    result = run_task("rds.status", env=env)
    assert result.returncode == 0, result.stderr
    rows = {}
    for line in result.stdout.splitlines():
        cells = [cell.strip() for cell in line.strip("│ ").split("│")]
        if len(cells) == 2:
            rows[cells[0]] = cells[1]
    assert rows == {
        "identifier": "cruddur-db-instance",
        "status": "available",
        "endpoint": f"{created['Endpoint']['Address']}:5432",
        "engine": "postgres 17",
        "class": "db.t3.micro",
        "storage": "20 GB gp2",
        "public?": "yes",
        "security groups": ", ".join(g["VpcSecurityGroupId"] for g in created["VpcSecurityGroups"]),
        "extended support": "not reported",  # moto keeps no EngineLifecycleSupport
    }


def test_status_json(run_task, env, created):
    document = json.loads(run_task("rds.status", "--json", env=env).stdout)
    assert document["status"] == "available"
    assert (document["host"], document["port"]) == (created["Endpoint"]["Address"], 5432)
    assert document["security_groups"] == [g["VpcSecurityGroupId"] for g in created["VpcSecurityGroups"]]


def test_status_of_an_unknown_instance_says_how_to_create_it(run_task, env):
    result = run_task("rds.status", env=env)
    assert_one_line_error(
        result, "there is no RDS instance cruddur-db-instance in us-east-1 (DBInstanceNotFound); create it with: inv rds.create"
    )
    other = run_task("rds.status", "--identifier", "nope", env=env)
    assert_one_line_error(other, "create it with: inv rds.create --identifier nope")


def test_url_prints_a_line_that_reads_the_password_when_pasted(run_task, env, created):
    host = created["Endpoint"]["Address"]
    result = run_task("rds.url", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == 'export PROD_CONNECTION_URL="$(inv rds.url --show-password)"\n'
    assert f"# that sets postgresql://cruddurroot:****@{host}:5432/cruddur" in result.stderr
    assert "# next: inv db.schema-load --prod, then inv db.migrate --prod" in result.stderr
    assert_no_password(result)
    shown = run_task("rds.url", "--show-password", env=env)
    assert shown.stdout == f"postgresql://cruddurroot:s3cret%3Apass%23word@{host}:5432/cruddur\n"
    unknown = run_task("rds.url", "--show-password", env={**env, "RDS_MASTER_PASSWORD": ""})
    line = assert_one_line_error(unknown, "--show-password needs RDS_MASTER_PASSWORD, which is not set")
    # Inside $(...) this line is all a user sees: it ends with the commands that set both again.
    assert line.endswith(
        'read -rs RDS_MASTER_PASSWORD && export RDS_MASTER_PASSWORD && export PROD_CONNECTION_URL="$(inv rds.url --show-password)"'
    )


@pytest.mark.parametrize(
    "workspace_env, keep",
    [
        (
            {"CODESPACES": "true"},
            "# to keep it: inv rds.url --show-password | gh secret set PROD_CONNECTION_URL --user  (gh reads the value from stdin)",
        ),
        ({}, None),
    ],
)
def test_url_says_how_to_keep_the_setting_in_a_codespace(run_task, env, created, workspace_env, keep):
    result = run_task("rds.url", env={**env, **workspace_env})
    kept = [line for line in result.stderr.splitlines() if line.startswith("# to keep it")]
    assert kept == ([keep] if keep else [])


def test_create_turns_on_iam_database_authentication_unless_told_not_to(run_task, env, server_rds):
    assert run_task("rds.create", env=env).returncode == 0
    assert run_task("rds.create", "--identifier", "no-iam", "--no-iam-auth", env=env).returncode == 0

    found = instances(server_rds)
    assert found["cruddur-db-instance"]["IAMDatabaseAuthenticationEnabled"] is True
    assert found["no-iam"]["IAMDatabaseAuthenticationEnabled"] is False


def test_url_of_a_managed_password_reads_it_from_secrets_manager_and_says_so(run_task, env, moto_url):
    managed = {**env, "RDS_MASTER_PASSWORD": ""}
    assert run_task("rds.create", "--manage-password", env=managed).returncode == 0
    item = instances(server_client(moto_url, "rds"))["cruddur-db-instance"]
    secrets = server_client(moto_url, "secretsmanager")
    secrets.put_secret_value(
        SecretId=item["MasterUserSecret"]["SecretArn"], SecretString=json.dumps({"username": "cruddurroot", "password": "r0tated#1"})
    )

    line = run_task("rds.url", env=managed)
    shown = run_task("rds.url", "--show-password", env=managed)

    assert line.returncode == 0, line.stderr
    assert "reads the password from Secrets Manager, where RDS manages and rotates it" in line.stderr
    assert "r0tated" not in line.stdout + line.stderr
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == f"postgresql://cruddurroot:r0tated%231@{item['Endpoint']['Address']}:5432/cruddur\n"
    assert f"# the password comes from Secrets Manager ({item['MasterUserSecret']['SecretArn']})" in shown.stderr


def assert_moves_once(run_task, env, server_rds, task, status):
    moved = run_task(task, env=env)
    assert moved.returncode == 0, moved.stderr
    assert instances(server_rds)["cruddur-db-instance"]["DBInstanceStatus"] == status
    again = run_task(task, env=env)
    assert (again.returncode, again.stdout, again.stderr) == (0, f"cruddur-db-instance is already {status}; nothing to do\n", "")


def test_stop_start_and_polite_repeats(run_task, env, server_rds, created):
    assert_moves_once(run_task, env, server_rds, "rds.stop", "stopped")

    # Waiting cannot make a stopped instance available: one line saying what will.
    dead_end = "cruddur-db-instance is stopped; it will not become available by itself: run inv rds.start"
    assert_one_line_error(run_task("rds.wait", env=env), dead_end)
    assert_one_line_error(run_task("rds.create", "--wait", env=env), dead_end)

    assert_moves_once(run_task, env, server_rds, "rds.start", "available")
    waited = run_task("rds.wait", env=env)
    assert waited.returncode == 0 and "cruddur-db-instance: available at " in waited.stdout


def test_delete_refuses_without_confirmation(run_task, env, server_rds, created):
    result = run_task("rds.delete", env=env)
    assert result.returncode == 1
    assert "refused: delete RDS instance cruddur-db-instance" in result.stderr
    assert "Traceback" not in result.stderr
    assert "cruddur-db-instance" in instances(server_rds)


def test_delete_keeps_a_final_snapshot(run_task, env, server_rds, created):
    result = run_task("rds.delete", "--yes", env=env)
    assert result.returncode == 0, result.stderr
    snapshot = result.stdout.split("final snapshot: ")[1].strip()
    assert snapshot.startswith("cruddur-db-instance-final-")
    manual = [s["DBSnapshotIdentifier"] for s in server_rds.describe_db_snapshots(SnapshotType="manual")["DBSnapshots"]]
    assert manual == [snapshot]
    assert instances(server_rds) == {}


def test_delete_skips_the_snapshot_only_when_asked(run_task, env, server_rds, created):
    result = run_task("rds.delete", "--yes", "--skip-final-snapshot", env=env)
    assert result.returncode == 0, result.stderr
    assert "no final snapshot (skipped)" in result.stdout
    assert server_rds.describe_db_snapshots(SnapshotType="manual")["DBSnapshots"] == []
    assert instances(server_rds) == {}


def test_delete_of_an_unknown_instance_asks_nothing(run_task, env):
    assert_one_line_error(run_task("rds.delete", "--identifier", "nope", env=env), "DBInstanceNotFound")


def test_throttling_is_one_line(run_task, env, throttling_aws: ThrottlingAws):
    result = run_task("rds.status", env={**env, "AWS_ENDPOINT_URL": throttling_aws.url, "AWS_MAX_ATTEMPTS": "1"})
    assert_one_line_error(result, "DescribeDBInstances failed: Throttling: Rate exceeded", "throttled")
    assert throttling_aws.calls == 1


def run_on_a_terminal(args, env, answers, timeout=60):
    """Run `inv ARGS` on a terminal; answer each prompt in turn. (exit code, all the terminal showed)"""
    terminal = Terminal(args, env)
    for prompt, answer in answers:
        terminal.read_until(prompt, timeout)
        terminal.type(answer + "\n")
    code, shown, _ = terminal.finish(timeout)
    return code, shown


def test_create_asks_for_the_password_twice_on_a_terminal_without_echo(base_env, env, server_rds):
    terminal_env = {**base_env, **env, "RDS_MASTER_PASSWORD": "", "TERM": "dumb"}
    answers = [("RDS master password (hidden): ", PASSWORD), ("Again: ", PASSWORD)]
    code, shown = run_on_a_terminal(["rds.create"], terminal_env, answers)
    assert code == 0, shown
    assert "RDS master password (hidden):" in shown and "Again:" in shown
    assert PASSWORD not in shown
    assert "cruddur-db-instance" in instances(server_rds)


def test_create_stops_when_the_two_passwords_differ(base_env, env, server_rds):
    terminal_env = {**base_env, **env, "RDS_MASTER_PASSWORD": "", "TERM": "dumb"}
    answers = [("RDS master password (hidden): ", PASSWORD), ("Again: ", PASSWORD + "x")]
    code, shown = run_on_a_terminal(["rds.create"], terminal_env, answers)
    assert code == 1
    assert "error: the two passwords differ; nothing created" in shown
    assert PASSWORD not in shown
    assert instances(server_rds) == {}


@pytest.mark.parametrize(
    "variable, value, fragment",
    [
        ("AWS_DEFAULT_REGION", "us east 1", "AWS_DEFAULT_REGION"),
        ("AWS_ENDPOINT_URL", "localhost:4566", "AWS_ENDPOINT_URL"),
        ("AWS_MAX_ATTEMPTS", "abc", "AWS_MAX_ATTEMPTS"),
    ],
)
def test_a_malformed_aws_variable_is_one_line_and_creates_nothing(run_task, env, server_rds, variable, value, fragment):
    result = run_task("rds.create", env={**env, variable: value})
    assert_one_line_error(result, fragment)
    assert instances(server_rds) == {}


def test_wait_shows_each_status_then_times_out(run_task, env, created):
    set_instance_status("cruddur-db-instance", "modifying")
    timed_out = run_task("rds.wait", "--timeout", "1", env=env)
    assert timed_out.returncode == 1 and "Traceback" not in timed_out.stderr
    # Off a terminal, each status is a line of its own; then the error.
    progress, error = timed_out.stderr.splitlines()
    assert progress.startswith("cruddur-db-instance: modifying (")
    assert error == "error: timed out after 1s: RDS instance cruddur-db-instance is still modifying"


def test_wait_shows_a_progress_line_on_a_terminal(base_env, env, created):
    set_instance_status("cruddur-db-instance", "modifying")
    terminal = Terminal(["rds.wait", "--timeout", "1"], {**base_env, **env, "TERM": "xterm"})
    code, shown, _ = terminal.finish()
    assert code == 1, shown
    assert "cruddur-db-instance: waiting for available: modifying" in shown and "0:00:0" in shown  # status, time elapsed
    assert "error: timed out after 1s: RDS instance cruddur-db-instance is still modifying" in shown


@pytest.mark.parametrize(
    "args, message",
    [
        (("rds.create", "--storage", "abc"), "--storage takes a whole number, not 'abc'"),
        (("rds.create", "--storage", "20.5"), "--storage takes a whole number, not '20.5'"),
        (("rds.create", "--storage", "-5"), "--storage must be a number of 0 or more"),
        (("rds.create", "--storage", "5"), "storage 5 GB is out of range"),
        (("rds.create", "--wait", "--timeout", "abc"), "--timeout takes a number, not 'abc'"),
        (("rds.create", "--wait", "--timeout", "nan"), "--timeout must be a number of 0 or more, not 'nan'"),
    ],
)
@pytest.mark.parametrize("dry", [(), ("--dry",)], ids=["", "dry"])
def test_create_refuses_a_bad_number_and_creates_nothing(run_task, env, server_rds, args, message, dry):
    assert_one_line_error(run_task(*dry, *args, env=env), message)
    assert instances(server_rds) == {}


@pytest.mark.parametrize(
    "value, message",
    [
        ("abc", "--timeout takes a number, not 'abc'"),
        ("nan", "--timeout must be a number of 0 or more, not 'nan'"),
        ("inf", "--timeout must be a number of 0 or more, not 'inf'"),
        ("-1", "--timeout must be a number of 0 or more, not '-1'"),
    ],
)
def test_wait_refuses_a_bad_timeout(run_task, env, value, message):
    assert_one_line_error(run_task("rds.wait", "--timeout", value, env=env), message)


# Every character RDS allows in a master password that means something to a URL or a shell.
AWKWARD_PASSWORD = "a%41#?:[]$x`!&;=b\\c*~"


def pasted(line: str, env: dict) -> str:
    """What PROD_CONNECTION_URL holds after the user pastes `line` into a shell."""
    shell_env = {**env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        ["bash", "-c", f'{line}\nprintf %s "$PROD_CONNECTION_URL"'],
        cwd=ROOT,
        env=shell_env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr
    return result.stdout


def test_first_time_production_walk_with_the_tool_alone(run_task, base_env, moto_url, ip_services):
    """From nothing to the URL a --prod db task uses: each step names the next, and the line rds.url
    prints works as pasted, whatever the password holds, without the password being printed."""
    from psycopg.conninfo import conninfo_to_dict

    from cruddur.config import Settings
    from cruddur.postgres import target

    env = {"AWS_ENDPOINT_URL": moto_url, "RDS_MASTER_PASSWORD": AWKWARD_PASSWORD, "IP_LOOKUP_URLS": ip_services.urls("good")}
    outputs = []
    for command, next_step in [
        (["rds.create", "--wait"], "next: inv sg.update"),
        (["sg.update"], "next: inv rds.url"),
        (["rds.url"], "# next: inv db.schema-load --prod, then inv db.migrate --prod"),
    ]:
        result = run_task(*command, env=env)
        assert result.returncode == 0, result.stderr
        assert AWKWARD_PASSWORD not in result.stdout + result.stderr
        assert next_step in result.stdout + result.stderr
        outputs.append(result)

    ec2, rds = server_client(moto_url, "ec2"), server_client(moto_url, "rds")
    item = rds.describe_db_instances()["DBInstances"][0]
    (group_id,) = [g["VpcSecurityGroupId"] for g in item["VpcSecurityGroups"]]
    rules = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group_id]}])
    ours = [r for r in rules["SecurityGroupRules"] if r.get("Description") == "cruddur-ops: inv sg.update"]
    assert [(r["IpProtocol"], r["FromPort"], r["CidrIpv4"]) for r in ours] == [("tcp", 5432, "203.0.113.7/32")]

    url = pasted(outputs[-1].stdout, {**base_env, **env})
    chosen = target.resolve(Settings.from_env({"PROD_CONNECTION_URL": url}), prod=True)
    assert chosen.prod
    parts = conninfo_to_dict(chosen.url)
    assert parts == {
        "host": item["Endpoint"]["Address"],
        "port": "5432",
        "dbname": "cruddur",
        "user": "cruddurroot",
        "password": AWKWARD_PASSWORD,
    }


def test_no_advice_offers_a_password_to_copy(run_task, env, server_rds):
    """The README and the refusal ask for the user's own password (typed, not shown), never an example one."""
    readme = (ROOT / "README.md").read_text()
    assert "\nread -rs RDS_MASTER_PASSWORD && export RDS_MASTER_PASSWORD" in readme
    assert "export RDS_MASTER_PASSWORD=" not in readme
    refusal = assert_one_line_error(run_task("rds.create", env={**env, "RDS_MASTER_PASSWORD": ""}), "no master password")
    assert refusal.endswith("type one of your own (not shown): read -rs RDS_MASTER_PASSWORD && export RDS_MASTER_PASSWORD")
    assert not instances(server_rds)


def test_the_rds_and_sg_task_modules_load_nothing_of_the_aws_library_at_import():
    probe = "import sys, tasks.rds, tasks.sg\nprint(' '.join(m for m in sys.modules if m.startswith('cruddur.aws')))"
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_the_flags_help_states_the_librarys_defaults():
    """The help texts spell the defaults out (the library stays unloaded at import); they must not drift."""
    import tasks.rds
    import tasks.sg
    from cruddur.aws import rds as library

    defaults = library.CreateOptions()
    help_of = tasks.rds.create.help
    for flag, value in [
        ("identifier", defaults.identifier),
        ("instance_class", defaults.instance_class),
        ("engine_version", defaults.engine_version),
        ("storage", defaults.storage_gb),
        ("availability_zone", defaults.availability_zone),
        ("db_name", defaults.db_name),
        ("username", defaults.username),
        ("timeout", int(RDS_WAIT_TIMEOUT)),
    ]:
        assert f"(default {value})" in help_of[flag], flag
    for module_task in (tasks.rds.status, tasks.rds.url, tasks.sg.update, tasks.sg.discover):
        assert f"(default {library.DEFAULT_IDENTIFIER})" in module_task.help["identifier"]


def test_every_next_step_for_another_instance_names_it(run_task, env, rds):
    other = ["--identifier", "other-db"]
    created = run_task("rds.create", *other, env=env)
    assert created.stdout.splitlines()[-1].startswith("next: inv sg.update --identifier other-db (")
    assert run_task("rds.wait", *other, env=env).stdout.splitlines()[-1] == "next: inv sg.update --identifier other-db"
    stopped = run_task("rds.stop", *other, env=env)
    assert stopped.stdout.rstrip().endswith("after 7 days; inv rds.start --identifier other-db)")
    dead_end = assert_one_line_error(run_task("rds.wait", *other, env=env))
    assert dead_end.endswith("run inv rds.start --identifier other-db, then wait again")
    missing = assert_one_line_error(run_task("rds.url", "--identifier", "gone-db", env=env))
    assert missing.endswith("create it with: inv rds.create --identifier gone-db")
