"""The RDS library against moto in-process; the tasks are in test_rds_tasks.py."""

import json
from datetime import UTC, datetime

import boto3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg.conninfo import conninfo_to_dict

from cruddur.aws import master_secret
from cruddur.aws import rds as library
from cruddur.errors import AwsError, ConfigError, DatabaseError
from tests.aws_support import set_instance_status
from tests.helpers import examples

PASSWORD = "s3cret:pass#word"


def never_asked():
    raise AssertionError("the password was asked for")


def describe(rds, identifier="cruddur-db-instance"):
    return rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]


def test_create_uses_the_bootcamp_defaults_on_a_current_major(rds):
    sent = []
    rds.meta.events.register("provide-client-params.rds.CreateDBInstance", lambda params, **_: sent.append(dict(params)))
    instance, created = library.create(rds, library.CreateOptions(), lambda: PASSWORD)
    assert created and instance.identifier == "cruddur-db-instance"
    item = describe(rds)
    expected = {
        "DBInstanceClass": "db.t3.micro",
        "Engine": "postgres",
        "EngineVersion": "17",
        "MasterUsername": "cruddurroot",
        "AllocatedStorage": 20,
        "AvailabilityZone": "us-east-1a",
        "BackupRetentionPeriod": 0,
        "MultiAZ": False,
        "DBName": "cruddur",
        "StorageType": "gp2",
        "PubliclyAccessible": True,
        "StorageEncrypted": True,
        "DeletionProtection": False,
    }
    assert {k: item.get(k) for k in expected} == expected
    assert item["Endpoint"]["Port"] == 5432
    # moto does not keep Performance Insights settings: check what went to AWS.
    assert sent[0]["EnablePerformanceInsights"] is True
    assert sent[0]["PerformanceInsightsRetentionPeriod"] == 7
    assert sent[0]["MasterUserPassword"] == PASSWORD and "ManageMasterUserPassword" not in sent[0]
    # A major alone (RDS picks its current minor), and no Extended Support bill unless asked for.
    assert sent[0]["EngineVersion"] == "17"
    assert sent[0]["EngineLifecycleSupport"] == "open-source-rds-extended-support-disabled"


def test_extended_support_only_when_asked(rds):
    sent = []
    rds.meta.events.register("provide-client-params.rds.CreateDBInstance", lambda params, **_: sent.append(dict(params)))
    library.create(rds, library.CreateOptions(extended_support=True, engine_version="16.4"), lambda: PASSWORD)
    assert (sent[0]["EngineLifecycleSupport"], sent[0]["EngineVersion"]) == ("open-source-rds-extended-support", "16.4")


def test_create_takes_the_overrides(rds):
    options = library.CreateOptions(
        identifier="cruddur-test",
        instance_class="db.t4g.small",
        engine_version="15.4",
        storage_gb=30,
        availability_zone="us-east-1b",
        db_name="cruddur_test",
        username="admin_user",
        publicly_accessible=False,
    )
    library.create(rds, options, lambda: PASSWORD)
    item = describe(rds, "cruddur-test")
    assert (
        item["DBInstanceClass"],
        item["EngineVersion"],
        item["AllocatedStorage"],
        item["AvailabilityZone"],
        item["DBName"],
        item["MasterUsername"],
        item["PubliclyAccessible"],
    ) == ("db.t4g.small", "15.4", 30, "us-east-1b", "cruddur_test", "admin_user", False)


def test_create_is_idempotent_and_asks_for_no_password_the_second_time(rds):
    library.create(rds, library.CreateOptions(), lambda: PASSWORD)
    instance, created = library.create(rds, library.CreateOptions(instance_class="db.t3.large"), never_asked)
    assert not created
    assert instance.status == "available"
    assert describe(rds)["DBInstanceClass"] == "db.t3.micro"
    assert len(rds.describe_db_instances()["DBInstances"]) == 1


def test_manage_password_lets_rds_keep_it(rds):
    instance, _ = library.create(rds, library.CreateOptions(manage_password=True), never_asked)
    assert instance.secret_arn.startswith("arn:aws:secretsmanager:")
    assert describe(rds)["MasterUserSecret"]["SecretArn"] == instance.secret_arn


@pytest.mark.parametrize(
    "identifier",
    [
        "",
        "1cruddur",
        "cruddur-",
        "cruddur--db",
        "cruddur_db",
        "cruddur.db",
        "c" * 64,
        "crüddur",
    ],
)
def test_invalid_identifiers_are_refused_before_aws(rds, identifier):
    with pytest.raises(ConfigError, match="identifier"):
        library.create(rds, library.CreateOptions(identifier=identifier), lambda: PASSWORD)
    assert rds.describe_db_instances()["DBInstances"] == []


@pytest.mark.parametrize("identifier", ["c", "cruddur-db-instance", "C" + "x-1" * 20 + "ab"])
def test_valid_identifiers_pass(identifier):
    assert library.check_identifier(identifier) == identifier


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("instance_class", "t3.micro", "instance class"),
        ("engine_version", "fourteen", "engine version"),
        ("availability_zone", "us-east-1", "availability zone"),
        ("db_name", "cruddur-db", "database name"),
        ("username", "1root", "master username"),
        ("storage_gb", 10, "storage 10 GB"),
    ],
)
def test_invalid_options_are_refused_before_aws(rds, field, value, message):
    with pytest.raises(ConfigError, match=message):
        library.create(rds, library.CreateOptions(**{field: value}), lambda: PASSWORD)
    assert rds.describe_db_instances()["DBInstances"] == []


@pytest.mark.parametrize("password", ["short", "has space in it", "has/slash/in", "quote'in'it", "at@sign@here", "x" * 129])
def test_passwords_rds_would_refuse_are_refused_without_being_repeated(rds, password):
    with pytest.raises(ConfigError) as caught:
        library.create(rds, library.CreateOptions(), lambda: password)
    assert password not in str(caught.value)
    assert rds.describe_db_instances()["DBInstances"] == []


def test_connection_url_masks_the_password_unless_given(rds):
    instance, _ = library.create(rds, library.CreateOptions(), lambda: PASSWORD)
    host = describe(rds)["Endpoint"]["Address"]
    assert instance.connection_url() == f"postgresql://cruddurroot:****@{host}:5432/cruddur"
    # Characters that mean something in a URL are percent-encoded.
    assert instance.connection_url(PASSWORD) == f"postgresql://cruddurroot:s3cret%3Apass%23word@{host}:5432/cruddur"


def test_wait_returns_an_available_instance(rds):
    library.create(rds, library.CreateOptions(), lambda: PASSWORD)
    assert library.wait_available(rds, "cruddur-db-instance", timeout=5).status == "available"


def test_wait_times_out_naming_the_status(rds):
    library.create(rds, library.CreateOptions(), lambda: PASSWORD)
    set_instance_status("cruddur-db-instance", "modifying")
    seen = []
    with pytest.raises(AwsError, match="timed out after 0.2s: RDS instance cruddur-db-instance is still modifying"):
        library.wait_available(rds, "cruddur-db-instance", timeout=0.2, on_status=seen.append, poll_seconds=0.05)
    assert seen and set(seen) == {"modifying"}


@pytest.mark.parametrize("status", ["stopped", "stopping"])
def test_wait_on_a_stopped_instance_is_a_dead_end_that_says_to_start_it(rds, status):
    library.create(rds, library.CreateOptions(), lambda: PASSWORD)
    library.stop(rds, "cruddur-db-instance")
    set_instance_status("cruddur-db-instance", status)
    with pytest.raises(AwsError, match=f"cruddur-db-instance is {status}; it will not become available by itself: run inv rds.start"):
        library.wait_available(rds, "cruddur-db-instance", timeout=2, poll_seconds=0.05)


def test_wait_for_an_unknown_instance_is_an_aws_error(rds):
    with pytest.raises(AwsError, match="DBInstanceNotFound"):
        library.wait_available(rds, "no-such-instance", timeout=1)


def test_stop_and_start(rds):
    library.create(rds, library.CreateOptions(), lambda: PASSWORD)
    instance, stopped = library.stop(rds, "cruddur-db-instance")
    assert stopped and instance.status == "stopped"
    assert describe(rds)["DBInstanceStatus"] == "stopped"
    _, started = library.start(rds, "cruddur-db-instance")
    assert started and describe(rds)["DBInstanceStatus"] == "available"


@pytest.mark.parametrize("status", ["available", "starting"])
def test_starting_a_running_instance_changes_nothing(rds, status):
    library.create(rds, library.CreateOptions(), lambda: PASSWORD)
    set_instance_status("cruddur-db-instance", status)
    instance, started = library.start(rds, "cruddur-db-instance")
    assert (started, instance.status, describe(rds)["DBInstanceStatus"]) == (False, status, status)


@pytest.mark.parametrize("status", ["stopped", "stopping"])
def test_stopping_a_stopped_instance_changes_nothing(rds, status):
    library.create(rds, library.CreateOptions(), lambda: PASSWORD)
    library.stop(rds, "cruddur-db-instance")
    set_instance_status("cruddur-db-instance", status)
    instance, stopped = library.stop(rds, "cruddur-db-instance")
    assert (stopped, instance.status, describe(rds)["DBInstanceStatus"]) == (False, status, status)


def test_delete_keeps_a_final_snapshot_unless_skipped(rds):
    library.create(rds, library.CreateOptions(), lambda: PASSWORD)
    library.create(rds, library.CreateOptions(identifier="scratch"), lambda: PASSWORD)
    _, snapshot = library.delete(rds, "cruddur-db-instance")
    assert snapshot.startswith("cruddur-db-instance-final-")
    _, skipped = library.delete(rds, "scratch", skip_final_snapshot=True)
    assert skipped is None
    snapshots = {s["DBSnapshotIdentifier"] for s in rds.describe_db_snapshots(SnapshotType="manual")["DBSnapshots"]}
    assert snapshots == {snapshot}
    assert rds.describe_db_instances()["DBInstances"] == []


def test_final_snapshot_identifiers_follow_the_identifier_rules():
    at = datetime(2026, 11, 25, 22, 30, 5, tzinfo=UTC)
    name = library.final_snapshot_identifier("cruddur-db-instance", at)
    assert name == "cruddur-db-instance-final-20261125-223005"


def test_an_unknown_instance_is_an_aws_error_that_says_how_to_create_it(rds):
    with pytest.raises(AwsError) as caught:
        library.get_instance(rds, "nope")
    assert str(caught.value) == (
        "there is no RDS instance nope in us-east-1 (DBInstanceNotFound); create it with: inv rds.create --identifier nope"
    )
    assert caught.value.code == "DBInstanceNotFound"


# RDS's refusal of a version it no longer creates, as it answers today; moto accepts any version
# and has no describe_db_engine_versions, so these run on botocore's Stubber.
REFUSAL = "Cannot find version 14.6 for postgres"


def engine_version(version: str) -> dict:
    return {
        "Engine": "postgres",
        "EngineVersion": version,
        "DBParameterGroupFamily": "postgres14",
        "DBEngineDescription": "PostgreSQL",
        "DBEngineVersionDescription": f"PostgreSQL {version}-R1",
        "Status": "available",
        "SupportedEngineModes": ["provisioned"],
        "SupportsReadReplica": True,
    }


@pytest.fixture
def stubbed(aws_env):
    """A real RDS client (no moto) whose answers the test lists: no instance yet, then AWS refuses 14.6."""
    from botocore.stub import Stubber

    from cruddur.aws import clients

    client = clients.client("rds")
    with Stubber(client) as stubber:
        stubber.add_client_error("describe_db_instances", "DBInstanceNotFound", "DBInstance cruddur-db-instance not found.", 404)
        stubber.add_client_error("create_db_instance", "InvalidParameterCombination", REFUSAL, 400)
        yield client, stubber
        stubber.assert_no_pending_responses()


FAMILY_14 = {"Engine": "postgres", "DBParameterGroupFamily": "postgres14"}


def test_a_refused_version_lists_the_newest_ones_rds_offers_for_that_major(stubbed):
    client, stubber = stubbed
    offered = ["14.9", "14.15", "14.20", "14.17", "14.18", "14.19", "14.10"]
    stubber.add_response("describe_db_engine_versions", {"DBEngineVersions": [engine_version(v) for v in offered]}, FAMILY_14)
    with pytest.raises(AwsError) as caught:
        library.create(client, library.CreateOptions(engine_version="14.6"), lambda: PASSWORD)
    assert str(caught.value) == (
        "RDS cannot create PostgreSQL 14.6 in us-east-1 (InvalidParameterCombination); the newest 14.x it"
        " offers: 14.20, 14.19, 14.18, 14.17, 14.15 (pass --engine-version 14 to get its default minor, or one of these)"
    )


def test_a_refused_major_that_rds_no_longer_offers_points_at_the_default(stubbed):
    client, stubber = stubbed
    stubber.add_response("describe_db_engine_versions", {"DBEngineVersions": []}, FAMILY_14)
    with pytest.raises(AwsError, match=r"offers no 14.x version there; pass --engine-version 17$"):
        library.create(client, library.CreateOptions(engine_version="14.6"), lambda: PASSWORD)


def test_when_rds_will_not_list_versions_the_refusal_is_its_own_message(stubbed):
    client, stubber = stubbed
    stubber.add_client_error(
        "describe_db_engine_versions",
        "AccessDenied",
        "User is not authorized to perform: rds:DescribeDBEngineVersions",
        403,
        expected_params=FAMILY_14,
    )
    with pytest.raises(AwsError) as caught:
        library.create(client, library.CreateOptions(engine_version="14.6"), lambda: PASSWORD)
    assert str(caught.value) == f"AWS CreateDBInstance failed: InvalidParameterCombination: {REFUSAL}"


# Every password RDS accepts: printable ASCII without / ' " @ or a space, 8 to 128 characters.
RDS_PASSWORDS = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="/'\"@"), min_size=8, max_size=128)


@given(RDS_PASSWORDS)
@settings(max_examples=examples(300), deadline=None)
def test_any_password_rds_accepts_comes_back_whole_from_the_url(password):
    """What `inv rds.url --show-password` prints (the pasted line's value) is read by libpq, the
    parser every db task uses, as exactly that password."""
    library.check_password(password)
    instance = library.Instance(
        identifier="cruddur-db-instance",
        status="available",
        engine="postgres",
        engine_version="17",
        instance_class="db.t3.micro",
        storage_gb=20,
        storage_type="gp2",
        public=True,
        username="cruddurroot",
        db_name="cruddur",
        host="cruddur-db-instance.abc.us-east-1.rds.amazonaws.com",
        port=5432,
    )
    assert conninfo_to_dict(instance.connection_url(password)) == {
        "host": instance.host,
        "port": "5432",
        "dbname": "cruddur",
        "user": "cruddurroot",
        "password": password,
    }


# -- a password RDS manages in Secrets Manager ---------------------------------------------------


def managed_instance(rds):
    instance, _ = library.create(rds, library.CreateOptions(manage_password=True), password=never_asked)
    return library.get_instance(rds, instance.identifier)


def set_secret(instance, password: str) -> None:
    boto3.client("secretsmanager", region_name="us-east-1").put_secret_value(
        SecretId=instance.secret_arn, SecretString=json.dumps({"username": instance.username, "password": password})
    )


def test_a_rotation_between_the_read_and_the_login_is_retried_once_with_the_new_password(rds):
    instance = managed_instance(rds)
    secrets = boto3.client("secretsmanager", region_name="us-east-1")
    set_secret(instance, "before-rotation")
    tried = []

    def login(url):
        tried.append(url)
        if len(tried) == 1:
            set_secret(instance, "after-rotation")  # RDS rotates it meanwhile
            raise DatabaseError('cannot connect to ...: FATAL: password authentication failed for user "cruddurroot"')
        return "connected"

    assert master_secret.with_master_url(secrets, instance, login) == "connected"
    assert [url.split("@")[0].rsplit(":", 1)[1] for url in tried] == ["before-rotation", "after-rotation"]


def test_a_wrong_password_without_a_rotation_is_not_retried(rds):
    instance = managed_instance(rds)
    set_secret(instance, "the-only-one")
    tried = []

    def login(url):
        tried.append(url)
        raise DatabaseError('FATAL: password authentication failed for user "cruddurroot"')

    with pytest.raises(DatabaseError, match="password authentication failed"):
        master_secret.with_master_url(boto3.client("secretsmanager", region_name="us-east-1"), instance, login)
    assert len(tried) == 1


def test_an_instance_without_a_managed_password_says_so(rds):
    library.create(rds, library.CreateOptions(identifier="plain"), password=lambda: "a-long-secret")

    with pytest.raises(AwsError, match="has no MasterUserSecret"):
        master_secret.master_password(boto3.client("secretsmanager", region_name="us-east-1"), library.get_instance(rds, "plain"))
