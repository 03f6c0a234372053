"""The database security group: keep its port-5432 rule open to this workspace's IP.

Nothing of the library loads at import (`inv --list` stays light); defaults are resolved inside
the tasks and their help says the value.
"""

import sys

from ._cli import JSON_HELP, console, print_json, printable, settings, task
from ._cli import show as show_table
from .rds import for_instance, url_command

IDENTIFIER_HELP = "the RDS instance whose group to use when DB_SG_ID is unset (default cruddur-db-instance)"


@task()
def ip(c):
    """Print the public IP sg.update would allow, and its source."""
    from cruddur.aws import public_ip

    found = public_ip.lookup(settings())
    print(f"{found.address} (from {found.source})")


@task(
    help={
        "description": "the rule's description, with DB_SG_RULE_ID (default: the rule's own)",
        "identifier": IDENTIFIER_HELP,
        "dry_run": "show the change, make none",
    }
)
def update(c, description=None, identifier=None, dry_run=False):
    """Open port 5432 of the database's security group to this workspace's IP.

    With DB_SG_ID and DB_SG_RULE_ID, rewrites that rule. Without them, finds the instance's group
    and rewrites the rule this task added there, adding it the first time; no other rule changes.
    """
    from cruddur.aws import clients, public_ip
    from cruddur.aws import security_group as sg
    from cruddur.aws.rds import chosen_identifier
    from cruddur.errors import ConfigError

    from ._protocol import dry_run_shown, is_dry, nothing_to_do

    dry_run = is_dry(c, dry_run)
    config = settings()
    explicit = bool(config.db_sg_id or config.db_sg_rule_id)
    # Variables first, and the address before any change: a missing variable or a bad answer
    # never changes a rule.
    if explicit:
        group_id, rule_id = sg.managed_rule_ids(config)
    elif description is not None:
        raise ConfigError(
            "--description needs DB_SG_ID and DB_SG_RULE_ID: without them sg.update finds its own rule"
            f" by its description ({sg.MANAGED_DESCRIPTION!r})"
        )
    if description is not None:
        sg.check_description(description)
    ec2 = clients.client("ec2")
    if explicit:
        found = public_ip.lookup(config)
        change = sg.plan_update(ec2, group_id, rule_id, found.address, description)
    else:
        # Reading the instance's groups changes nothing, and says first when AWS is not set up yet.
        managed = sg.find_managed(clients.client("rds"), ec2, chosen_identifier(identifier))
        found = public_ip.lookup(config)
        if managed.rule:
            change = sg.plan_update(ec2, managed.group_id, managed.rule.rule_id, found.address)
        else:
            change = sg.plan_add(managed.group_id, found.address)
    group_id = change.after.group_id
    if change.before is None:
        print(f"{group_id} has no rule of this tool yet: adding {change.after} (IP from {found.source})")
    elif not change.needed:
        already = f"{change.after.rule_id} in {group_id} already allows {change.after} (IP from {found.source}); nothing to do"
        nothing_to_do(c, already, f"next: {url_command(identifier)}", dry_run=dry_run)
        return
    else:
        where = f"{change.after.rule_id} in {group_id}"
        print(f"{where}: {change.before} -> {change.after} (IP from {found.source})")
    if dry_run_shown(c, [], dry_run=dry_run):
        return
    rule_id = sg.apply(ec2, change)
    print(f"added {rule_id}" if change.before is None else "updated")
    print(f"next: {url_command(identifier)}")


@task(help={"identifier": IDENTIFIER_HELP, "json": JSON_HELP})
def show(c, identifier=None, json_=False):
    """Show the inbound rules of the database's group, the one sg.update manages marked."""
    from cruddur.aws import clients
    from cruddur.aws import security_group as sg
    from cruddur.aws.rds import chosen_identifier

    config = settings()
    ec2 = clients.client("ec2")
    if config.db_sg_id or config.db_sg_rule_id:
        group_id = sg.check_group_id(config.require("db_sg_id"))
        managed = config.db_sg_rule_id
        where = "DB_SG_RULE_ID"
    else:
        found = sg.find_managed(clients.client("rds"), ec2, chosen_identifier(identifier))
        group_id, managed = found.group_id, found.rule and found.rule.rule_id
        where = f"marked {sg.MANAGED_DESCRIPTION!r}"
    group, rules = sg.inbound_rules(ec2, group_id)
    if json_:
        print_json(
            {
                "group_id": group_id,
                "group_name": group.get("GroupName"),
                "vpc_id": group.get("VpcId"),
                "managed_rule_id": managed,
                "rules": rules,
            }
        )
        return
    from rich.table import Table
    from rich.text import Text

    # Group names, descriptions and DB_SG_RULE_ID are other people's text: plain, escaped.
    title = f"{group_id} ({group.get('GroupName', '')}, {group.get('VpcId') or 'no VPC'}): inbound rules"
    table = Table(title=Text(printable(title)))
    for column in ("", "rule", "protocol", "ports", "source", "description"):
        table.add_column(column)
    for r in rules:
        mark = "*" if r.rule_id == managed else ""
        table.add_row(*(Text(printable(cell)) for cell in (mark, r.rule_id, r.protocol_name, r.ports, r.source, r.description)))
    show_table(table)  # this module's own `show` is the sg.show task
    out = console()
    if managed and managed not in {r.rule_id for r in rules}:
        out.print(Text(printable(f"DB_SG_RULE_ID {managed} is not an inbound rule of {group_id}")))
    elif managed:
        out.print(Text(printable(f"* the rule sg.update manages ({where})")))
    else:
        out.print(Text(printable(f"sg.update manages no rule here yet; add one with: {for_instance('inv sg.update', identifier)}")))


@task(help={"identifier": "the RDS instance (default cruddur-db-instance)"})
def discover(c, identifier=None):
    """Print DB_SG_ID and DB_SG_RULE_ID, found from the RDS instance (sg.update needs neither)."""
    from cruddur.aws import clients
    from cruddur.aws import security_group as sg
    from cruddur.aws.rds import chosen_identifier

    found = sg.discover(clients.client("rds"), clients.client("ec2"), chosen_identifier(identifier))
    print(f"# {found.instance}: group {found.group_id}, rule {found.rule.rule_id}: {found.rule}", file=sys.stderr)
    pairs = (("DB_SG_ID", found.group_id), ("DB_SG_RULE_ID", found.rule.rule_id))
    for name, value in pairs:
        print(f"export {name}={value}")
    workspace = settings().workspace
    for name, value in pairs:
        keep = workspace.keep_line(name, value)
        if keep:
            print(keep)
