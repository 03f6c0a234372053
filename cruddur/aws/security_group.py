"""The database's security group: the inbound rule that lets this workspace reach port 5432.

Functions take an EC2 (or RDS) client from cruddur.aws.clients; boto3 stays out of this import.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from ..config import Settings
from ..errors import AwsError, ConfigError
from .clients import translated

POSTGRES_PORT = 5432
DEFAULT_DESCRIPTION = "GITPOD"  # the bootcamp's rule
# The rule sg.update adds when DB_SG_ID/DB_SG_RULE_ID are unset; this description is how it
# finds that rule again, and the only rule it then changes.
MANAGED_DESCRIPTION = "cruddur-ops: inv sg.update"

GROUP_ID = re.compile(r"sg-(?:[0-9a-f]{8}|[0-9a-f]{17})")
RULE_ID = re.compile(r"sgr-[0-9a-f]{17}")
# What EC2 accepts in a rule description (moto accepts anything).
DESCRIPTION = re.compile(r"[A-Za-z0-9 ._\-:/()#,@\[\]+=&;{}!$*]{0,255}")


def check_group_id(value: str, variable: str = "DB_SG_ID") -> str:
    if not GROUP_ID.fullmatch(value):
        raise ConfigError(f"{variable} {value!r} is not a security group id (expected sg-0123456789abcdef0)")
    return value


def check_rule_id(value: str, variable: str = "DB_SG_RULE_ID") -> str:
    if not RULE_ID.fullmatch(value):
        raise ConfigError(f"{variable} {value!r} is not a security group rule id (expected sgr-0123456789abcdef0)")
    return value


def check_description(value: str) -> str:
    if not DESCRIPTION.fullmatch(value):
        raise ConfigError(f"description {value!r} is not allowed: up to 255 of letters, digits, spaces and ._-:/()#,@[]+=&;{{}}!$*")
    return value


def host_cidr(address: ipaddress.IPv4Address) -> str:
    """`address`/32; refuses anything that would open the rule wider than one host."""
    network = ipaddress.ip_network(f"{address}/32")
    if network.version != 4 or network.prefixlen != 32 or network.is_unspecified:
        raise ConfigError(f"refusing to allow {network}: the rule admits one IPv4 host only")
    return str(network)


@dataclass(frozen=True)
class Rule:
    rule_id: str
    group_id: str
    protocol: str
    from_port: int
    to_port: int
    source: str  # CIDR, prefix list or security group
    description: str
    egress: bool = False

    @classmethod
    def from_api(cls, item: dict) -> Rule:
        referenced = (item.get("ReferencedGroupInfo") or {}).get("GroupId")
        source = item.get("CidrIpv4") or item.get("CidrIpv6") or item.get("PrefixListId") or referenced or "?"
        return cls(
            rule_id=item["SecurityGroupRuleId"],
            group_id=item["GroupId"],
            protocol=item.get("IpProtocol", "-1"),
            from_port=item.get("FromPort", -1),
            to_port=item.get("ToPort", -1),
            source=source,
            description=item.get("Description", ""),
            egress=item.get("IsEgress", False),
        )

    @property
    def ports(self) -> str:
        if self.protocol == "-1":
            return "all"
        if self.from_port == self.to_port:
            return str(self.from_port)
        return f"{self.from_port}-{self.to_port}"

    @property
    def protocol_name(self) -> str:
        return "all" if self.protocol == "-1" else self.protocol

    @property
    def from_ipv4_range(self) -> bool:
        """Whether the source is an IPv4 CIDR, not an IPv6 one, a security group or a prefix list."""
        try:
            return ipaddress.ip_network(self.source).version == 4
        except ValueError:
            return False

    def rewritable_for(self, port: int) -> bool:
        """Whether sg.update may point this rule at one address: tcp from an IPv4 range, covering `port`.

        An all-traffic rule or one from a group (the default group's "all traffic from itself") serves
        other things; rewriting it would break them."""
        return self.protocol == "tcp" and self.from_ipv4_range and self.from_port <= port <= self.to_port

    def __str__(self) -> str:
        reach = "all traffic" if self.protocol == "-1" else f"{self.protocol_name} {self.ports}"
        text = f"{reach} from {self.source}"
        return f"{text} ({self.description})" if self.description else text


@dataclass(frozen=True)
class Change:
    before: Rule | None  # None: the rule is to be added
    after: Rule

    @property
    def needed(self) -> bool:
        return self.before != self.after


def get_rule(ec2: Any, group_id: str, rule_id: str) -> Rule:
    """The inbound rule `rule_id`, checked to belong to `group_id`."""
    with translated():
        items = ec2.describe_security_group_rules(SecurityGroupRuleIds=[rule_id])["SecurityGroupRules"]
    if not items:
        raise AwsError(f"security group rule {rule_id} does not exist")
    rule = Rule.from_api(items[0])
    if rule.group_id != group_id:
        raise ConfigError(f"rule {rule_id} belongs to {rule.group_id}, not to DB_SG_ID {group_id}")
    if rule.egress:
        raise ConfigError(f"rule {rule_id} is an outbound rule; DB_SG_RULE_ID must name the inbound port-5432 rule")
    return rule


def managed_rule_ids(settings: Settings) -> tuple[str, str]:
    """DB_SG_ID and DB_SG_RULE_ID, checked for shape before anything asks AWS."""
    return check_group_id(settings.require("db_sg_id")), check_rule_id(settings.require("db_sg_rule_id"))


def plan_update(ec2: Any, group_id: str, rule_id: str, address: ipaddress.IPv4Address, description: str | None = None) -> Change:
    """What updating the managed rule to admit `address` would change (nothing is changed).

    Without a `description`, the rule keeps its own."""
    check_group_id(group_id)
    check_rule_id(rule_id)
    if description is not None:
        check_description(description)
    cidr = host_cidr(address)
    before = get_rule(ec2, group_id, rule_id)
    if description is None:
        description = before.description
    if not before.rewritable_for(POSTGRES_PORT):
        raise ConfigError(
            f"refusing to rewrite rule {rule_id} ({before}): sg.update rewrites only a tcp rule from an IPv4"
            f" range that covers port {POSTGRES_PORT}; point DB_SG_RULE_ID at that rule (inv sg.discover finds it)"
        )
    after = Rule(rule_id, group_id, "tcp", POSTGRES_PORT, POSTGRES_PORT, cidr, description)
    return Change(before, after)


def plan_add(group_id: str, address: ipaddress.IPv4Address) -> Change:
    """The rule sg.update adds to `group_id` when it manages none there yet."""
    check_group_id(group_id, "the security group")
    after = Rule("", group_id, "tcp", POSTGRES_PORT, POSTGRES_PORT, host_cidr(address), MANAGED_DESCRIPTION)
    return Change(None, after)


def apply(ec2: Any, change: Change) -> str:
    """Make the change; the rule's id. An existing rule is rewritten in place (it keeps its id), as
    the bootcamp's modify-security-group-rules did."""
    after = change.after
    if change.before is None:
        return _add(ec2, after)
    with translated():
        answer = ec2.modify_security_group_rules(
            GroupId=after.group_id,
            SecurityGroupRules=[
                {
                    "SecurityGroupRuleId": after.rule_id,
                    "SecurityGroupRule": {
                        "IpProtocol": after.protocol,
                        "FromPort": after.from_port,
                        "ToPort": after.to_port,
                        "CidrIpv4": after.source,
                        "Description": after.description,
                    },
                }
            ],
        )
    if not answer.get("Return", False):
        raise AwsError(f"AWS ModifySecurityGroupRules did not confirm the change to {after.rule_id}")
    return after.rule_id


def _add(ec2: Any, rule: Rule) -> str:
    permission = {
        "IpProtocol": rule.protocol,
        "FromPort": rule.from_port,
        "ToPort": rule.to_port,
        "IpRanges": [{"CidrIp": rule.source, "Description": rule.description}],
    }
    with translated():
        answer = ec2.authorize_security_group_ingress(GroupId=rule.group_id, IpPermissions=[permission])
    added = answer.get("SecurityGroupRules") or []
    if not answer.get("Return", False) or not added:
        raise AwsError(f"AWS AuthorizeSecurityGroupIngress did not confirm the new rule in {rule.group_id}")
    return added[0]["SecurityGroupRuleId"]


def inbound_rules(ec2: Any, group_id: str) -> tuple[dict, list[Rule]]:
    """The group (name, VPC, ...) and its inbound rules."""
    check_group_id(group_id)
    with translated():
        group = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
        paginator = ec2.get_paginator("describe_security_group_rules")
        pages = paginator.paginate(Filters=[{"Name": "group-id", "Values": [group_id]}])
        rules = [Rule.from_api(item) for page in pages for item in page["SecurityGroupRules"]]
    return group, [r for r in rules if not r.egress]


@dataclass(frozen=True)
class Discovery:
    instance: str
    group_id: str
    rule: Rule


@dataclass(frozen=True)
class Managed:
    """Where sg.update works without DB_SG_ID/DB_SG_RULE_ID: its own rule, or the group to add it to."""

    instance: str
    group_id: str
    rule: Rule | None  # None: no rule of this tool yet


def instance_rules(rds: Any, ec2: Any, identifier: str):
    """RDS instance `identifier`, and the inbound rules of all its security groups."""
    from . import rds as rds_module

    instance = rds_module.get_instance(rds, identifier)
    if not instance.security_groups:
        raise AwsError(f"RDS instance {identifier} has no VPC security group")
    return instance, [rule for group_id in instance.security_groups for rule in inbound_rules(ec2, group_id)[1]]


def find_managed(rds: Any, ec2: Any, identifier: str) -> Managed:
    """The rule this tool added to a group of RDS instance `identifier` (marked MANAGED_DESCRIPTION),
    or the instance's first group when there is none. Other rules are never candidates."""
    instance, rules = instance_rules(rds, ec2, identifier)
    ours = [r for r in rules if r.description == MANAGED_DESCRIPTION]
    if len(ours) > 1:
        listed = ", ".join(f"{r.rule_id} in {r.group_id}" for r in ours)
        raise ConfigError(
            f"several rules are marked {MANAGED_DESCRIPTION!r} ({listed}); delete all but one, or point"
            " DB_SG_ID and DB_SG_RULE_ID at the one to use"
        )
    if ours:
        return Managed(identifier, ours[0].group_id, ours[0])
    return Managed(identifier, instance.security_groups[0], None)


def discover(rds: Any, ec2: Any, identifier: str) -> Discovery:
    """The security group of RDS instance `identifier` and its inbound rule for the database port."""
    instance, rules = instance_rules(rds, ec2, identifier)
    candidates = [r for r in rules if r.rewritable_for(instance.port)]
    if not candidates:
        groups = ", ".join(instance.security_groups)
        raise AwsError(
            f"no inbound tcp rule from an IPv4 range for port {instance.port} in {groups} (the groups of"
            f" {identifier}; rules from groups or prefix lists and all-traffic rules are not used);"
            " inv sg.update adds one (tcp 5432 from this workspace's IP) and keeps it up to date without"
            " DB_SG_ID or DB_SG_RULE_ID"
        )
    if len(candidates) > 1:
        marked = [r for r in candidates if r.description in (MANAGED_DESCRIPTION, DEFAULT_DESCRIPTION)]
        if len(marked) != 1:
            listed = "; ".join(f"{r.rule_id} in {r.group_id}: {r}" for r in candidates)
            raise ConfigError(
                f"several inbound tcp rules from IPv4 ranges admit port {instance.port}: {listed};"
                " pick one and export DB_SG_ID and DB_SG_RULE_ID yourself"
            )
        candidates = marked
    rule = candidates[0]
    return Discovery(identifier, rule.group_id, rule)
