"""The database security group: keep its port-5432 rule open to this workspace's IP."""

import sys

# Light at the top (boto3 and requests load inside their functions); the flags' defaults come from them.
from cruddur.aws.rds import DEFAULT_IDENTIFIER
from cruddur.aws.security_group import DEFAULT_DESCRIPTION

from ._cli import console, settings, task


@task()
def ip(c):
    """Print the public IP sg.update would allow, and its source."""
    from cruddur.aws import public_ip

    found = public_ip.lookup(settings())
    print(f"{found.address} (from {found.source})")


@task(
    help={
        "description": f"the rule's description (default {DEFAULT_DESCRIPTION})",
        "dry_run": "show the change, make none",
    }
)
def update(c, description=DEFAULT_DESCRIPTION, dry_run=False):
    """Point the DB_SG_RULE_ID rule at this workspace's IP."""
    from cruddur.aws import clients, public_ip
    from cruddur.aws import security_group as sg

    config = settings()
    # Variables and the address first: a missing variable or a bad answer never reaches AWS.
    group_id, rule_id = sg.managed_rule_ids(config)
    sg.check_description(description)
    found = public_ip.lookup(config)
    ec2 = clients.client("ec2")
    change = sg.plan_update(ec2, group_id, rule_id, found.address, description)
    where = f"{rule_id} in {group_id}"
    if not change.needed:
        print(f"{where} already allows {change.after} (IP from {found.source}); nothing to do")
        return
    print(f"{where}: {change.before} -> {change.after} (IP from {found.source})")
    if dry_run:
        print("dry run: nothing changed")
        return
    sg.apply(ec2, change)
    print("updated")


@task(help={"json": "print the rules as JSON"})
def show(c, json=False):
    """Show the inbound rules of DB_SG_ID, the managed rule marked."""
    from cruddur.aws import clients
    from cruddur.aws import security_group as sg

    config = settings()
    group_id = sg.check_group_id(config.require("db_sg_id"))
    managed = config.db_sg_rule_id
    group, rules = sg.inbound_rules(clients.client("ec2"), group_id)
    if json:
        import json as json_module

        rows = [{**vars(r), "managed": r.rule_id == managed} for r in rules]
        document = {"group_id": group_id, "group_name": group.get("GroupName"), "vpc_id": group.get("VpcId"), "rules": rows}
        print(json_module.dumps(document, indent=2))
        return
    from rich.markup import escape
    from rich.table import Table

    title = f"{group_id} ({group.get('GroupName', '')}, {group.get('VpcId') or 'no VPC'}): inbound rules"
    table = Table(title=escape(title))
    for column in ("", "rule", "protocol", "ports", "source", "description"):
        table.add_column(column)
    for r in rules:
        mark = "*" if r.rule_id == managed else ""
        table.add_row(mark, r.rule_id, r.protocol_name, r.ports, escape(r.source), escape(r.description))
    out = console()
    out.print(table)
    if managed and managed not in {r.rule_id for r in rules}:
        out.print(f"DB_SG_RULE_ID {escape(managed)} is not an inbound rule of {group_id}")
    elif managed:
        out.print("* the rule sg.update manages (DB_SG_RULE_ID)")


@task(help={"identifier": f"the RDS instance (default {DEFAULT_IDENTIFIER})"})
def discover(c, identifier=DEFAULT_IDENTIFIER):
    """Print DB_SG_ID and DB_SG_RULE_ID, found from the RDS instance."""
    from cruddur.aws import clients
    from cruddur.aws import security_group as sg

    found = sg.discover(clients.client("rds"), clients.client("ec2"), identifier)
    print(f"# {found.instance}: group {found.group_id}, rule {found.rule.rule_id}: {found.rule}", file=sys.stderr)
    pairs = (("DB_SG_ID", found.group_id), ("DB_SG_RULE_ID", found.rule.rule_id))
    for name, value in pairs:
        print(f"export {name}={value}")
    for name, value in pairs:
        print(f"gp env {name}={value}")
