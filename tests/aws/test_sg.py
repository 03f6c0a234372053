"""The security-group library against moto in-process; the tasks are in test_sg_tasks.py."""

import ipaddress

import pytest

from cruddur.aws import security_group as sg
from cruddur.config import Settings
from cruddur.errors import AwsError, ConfigError, MissingSetting
from tests import aws_support
from tests.aws_support import OLD_CIDR, foreign_rules, rule_state

NEW_IP = ipaddress.IPv4Address("203.0.113.7")


def test_plan_and_apply_rewrite_the_rule_in_place(ec2, db_group):
    change = sg.plan_update(ec2, db_group.group_id, db_group.rule_id, NEW_IP, "GITPOD")
    assert change.needed
    assert str(change.before) == f"tcp 5432 from {OLD_CIDR} (GITPOD)"
    assert str(change.after) == "tcp 5432 from 203.0.113.7/32 (GITPOD)"
    sg.apply(ec2, change)
    assert rule_state(ec2, db_group.rule_id) == {
        "IpProtocol": "tcp",
        "FromPort": 5432,
        "ToPort": 5432,
        "CidrIpv4": "203.0.113.7/32",
        "CidrIpv6": None,
        "Description": "GITPOD",
    }


def test_a_rule_that_already_says_so_needs_no_change(ec2, db_group):
    sg.apply(ec2, sg.plan_update(ec2, db_group.group_id, db_group.rule_id, NEW_IP, "GITPOD"))
    assert not sg.plan_update(ec2, db_group.group_id, db_group.rule_id, NEW_IP, "GITPOD").needed
    # Another description is a change too.
    assert sg.plan_update(ec2, db_group.group_id, db_group.rule_id, NEW_IP, "laptop").needed


def test_other_rules_of_the_group_are_left_alone(ec2, db_group):
    before = rule_state(ec2, db_group.other_rule_id)
    sg.apply(ec2, sg.plan_update(ec2, db_group.group_id, db_group.rule_id, NEW_IP, "GITPOD"))
    assert rule_state(ec2, db_group.other_rule_id) == before


def test_a_rule_of_another_group_is_refused(ec2, db_group):
    other = make_db_group_named(ec2, "other")
    with pytest.raises(ConfigError, match=f"belongs to {other.group_id}, not to DB_SG_ID {db_group.group_id}"):
        sg.plan_update(ec2, db_group.group_id, other.rule_id, NEW_IP, "GITPOD")


def make_db_group_named(ec2, name):
    vpc_id = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    group_id = ec2.create_security_group(GroupName=name, Description=name, VpcId=vpc_id)["GroupId"]
    rule_id = ec2.authorize_security_group_ingress(
        GroupId=group_id,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "IpRanges": [{"CidrIp": OLD_CIDR}]}],
    )["SecurityGroupRules"][0]["SecurityGroupRuleId"]
    return sg.Rule(rule_id, group_id, "tcp", 5432, 5432, OLD_CIDR, "")


def test_an_unknown_rule_is_an_aws_error_with_its_code(ec2, db_group):
    with pytest.raises(AwsError, match=r"DescribeSecurityGroupRules failed: InvalidSecurityGroupRuleId.NotFound: .*sgr-0123456789abcdef0"):
        sg.plan_update(ec2, db_group.group_id, "sgr-0123456789abcdef0", NEW_IP, "GITPOD")


def test_an_unknown_group_is_an_aws_error_with_its_code(ec2):
    with pytest.raises(AwsError, match="InvalidGroup.NotFound"):
        sg.inbound_rules(ec2, "sg-0123456789abcdef0")


@pytest.mark.parametrize(
    "group_id, rule_id, message",
    [
        ("sg-123", "sgr-0123456789abcdef0", "DB_SG_ID 'sg-123' is not a security group id"),
        ("0123456789abcdef0", "sgr-0123456789abcdef0", "is not a security group id"),
        ("sg-0123456789abcdef0", "sg-0123456789abcdef0", "DB_SG_RULE_ID 'sg-0123456789abcdef0' is not a security group rule id"),
        ("sg-0123456789abcdef0", "sgr-0123456789ABCDEF0", "is not a security group rule id"),
    ],
)
def test_malformed_ids_are_refused_before_asking_aws(group_id, rule_id, message):
    settings = Settings(db_sg_id=group_id, db_sg_rule_id=rule_id)
    with pytest.raises(ConfigError, match=message):
        sg.managed_rule_ids(settings)


def test_missing_ids_name_the_variable():
    with pytest.raises(MissingSetting, match="DB_SG_ID is not set: export DB_SG_ID="):
        sg.managed_rule_ids(Settings())
    with pytest.raises(MissingSetting, match="DB_SG_RULE_ID is not set: export DB_SG_RULE_ID="):
        sg.managed_rule_ids(Settings(db_sg_id="sg-0123456789abcdef0"))


@pytest.mark.parametrize("description", ["bad\nline", "naïve", "x" * 256, "quote'd"])
def test_descriptions_ec2_would_refuse_are_refused_and_change_nothing(ec2, db_group, description):
    before = rule_state(ec2, db_group.rule_id)
    with pytest.raises(ConfigError, match="description"):
        sg.plan_update(ec2, db_group.group_id, db_group.rule_id, NEW_IP, description)
    assert rule_state(ec2, db_group.rule_id) == before


@pytest.mark.parametrize("address", ["0.0.0.0", "2001:db8::1"])
def test_the_rule_never_opens_wider_than_one_ipv4_host(address):
    with pytest.raises((ConfigError, ValueError)):
        sg.host_cidr(ipaddress.ip_address(address))


def test_inbound_rules_lists_the_group_without_egress(ec2, db_group):
    group, rules = sg.inbound_rules(ec2, db_group.group_id)
    assert group["GroupName"] == "cruddur-db"
    assert {r.rule_id for r in rules} == {db_group.rule_id, db_group.other_rule_id}
    assert not any(r.egress for r in rules)


def create_instance(rds, group_ids, identifier="cruddur-db-instance"):
    aws_support.create_instance(rds, identifier, VpcSecurityGroupIds=group_ids)


def test_discover_finds_the_group_and_its_5432_rule(rds, ec2, db_group):
    create_instance(rds, [db_group.group_id])
    found = sg.discover(rds, ec2, "cruddur-db-instance")
    assert (found.group_id, found.rule.rule_id) == (db_group.group_id, db_group.rule_id)


def test_discover_without_a_5432_rule_says_so(rds, ec2):
    vpc_id = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    bare = ec2.create_security_group(GroupName="bare", Description="bare", VpcId=vpc_id)["GroupId"]
    create_instance(rds, [bare])
    with pytest.raises(AwsError, match=f"no inbound tcp rule from an IPv4 range for port 5432 in {bare}"):
        sg.discover(rds, ec2, "cruddur-db-instance")


def test_discover_with_several_candidates_prefers_the_gitpod_one_or_asks(rds, ec2, db_group):
    other = make_db_group_named(ec2, "other")  # its rule has no description
    create_instance(rds, [db_group.group_id, other.group_id])
    assert sg.discover(rds, ec2, "cruddur-db-instance").rule.rule_id == db_group.rule_id
    ec2.modify_security_group_rules(
        GroupId=db_group.group_id,
        SecurityGroupRules=[
            {
                "SecurityGroupRuleId": db_group.rule_id,
                "SecurityGroupRule": {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "CidrIpv4": OLD_CIDR, "Description": "x"},
            }
        ],
    )
    with pytest.raises(ConfigError, match="several inbound tcp rules from IPv4 ranges admit port 5432"):
        sg.discover(rds, ec2, "cruddur-db-instance")


def test_discover_of_an_unknown_instance_is_an_aws_error(rds, ec2):
    with pytest.raises(AwsError, match="DBInstanceNotFound"):
        sg.discover(rds, ec2, "no-such-instance")


def test_no_region_is_one_line(monkeypatch, tmp_path):
    from cruddur.aws import clients

    for name in ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "missing"))
    with pytest.raises(AwsError, match="no AWS region .*export AWS_DEFAULT_REGION="):
        clients.client("ec2")


def test_an_unknown_profile_is_one_line(monkeypatch, tmp_path):
    from cruddur.aws import clients

    monkeypatch.setenv("AWS_PROFILE", "nope")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "missing"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "missing"))
    with pytest.raises(AwsError, match=r"The config profile \(nope\) could not be found \(ProfileNotFound\)"):
        clients.client("ec2")


def test_an_outbound_rule_is_refused(ec2, db_group):
    rules = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [db_group.group_id]}])
    egress = next(r["SecurityGroupRuleId"] for r in rules["SecurityGroupRules"] if r["IsEgress"])
    with pytest.raises(ConfigError, match="is an outbound rule"):
        sg.plan_update(ec2, db_group.group_id, egress, NEW_IP, "GITPOD")
    assert rule_state(ec2, egress)["CidrIpv4"] == "0.0.0.0/0"


def bare_group(ec2, name="default-like"):
    vpc_id = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    return ec2.create_security_group(GroupName=name, Description=name, VpcId=vpc_id)["GroupId"]


def test_discover_never_picks_the_default_groups_all_traffic_from_itself_rule(rds, ec2):
    group_id = bare_group(ec2)
    foreign_rules(ec2, group_id)
    create_instance(rds, [group_id])
    with pytest.raises(AwsError, match=f"no inbound tcp rule from an IPv4 range for port 5432 in {group_id}"):
        sg.discover(rds, ec2, "cruddur-db-instance")


def test_discover_passes_over_group_prefix_list_and_all_traffic_rules(rds, ec2):
    default = bare_group(ec2)
    foreign_rules(ec2, default)
    ours = make_db_group_named(ec2, "ours")  # no GITPOD description: nothing but the rule's kind decides
    create_instance(rds, [default, ours.group_id])
    found = sg.discover(rds, ec2, "cruddur-db-instance")
    assert (found.group_id, found.rule.rule_id) == (ours.group_id, ours.rule_id)


@pytest.mark.parametrize("kind", ["self", "group", "prefix list", "all traffic", "udp", "ipv6"])
def test_plan_update_refuses_a_rule_it_must_not_rewrite(ec2, db_group, kind):
    rule_id = foreign_rules(ec2, db_group.group_id)[kind]
    before = rule_state(ec2, rule_id)
    with pytest.raises(ConfigError, match=f"refusing to rewrite rule {rule_id} .*only a tcp rule from an IPv4 range"):
        sg.plan_update(ec2, db_group.group_id, rule_id, NEW_IP, "GITPOD")
    assert rule_state(ec2, rule_id) == before


def test_plan_update_refuses_a_rule_for_another_port(ec2, db_group):
    with pytest.raises(ConfigError, match="that covers port 5432"):
        sg.plan_update(ec2, db_group.group_id, db_group.other_rule_id, NEW_IP, "GITPOD")
