"""Fixtures for the rds/sg tests: moto in-process and as a server, and IP echo services on 127.0.0.1.

Test modules import the fixtures they use from here.
"""

from __future__ import annotations

import json
import time
import urllib.request
from dataclasses import dataclass

import pytest

from cruddur.aws import clients as cruddur_aws
from tests import helpers

REGION = "us-east-1"
OLD_CIDR = "198.51.100.10/32"
# Answers that only a loopback server can give; the lookup would refuse 127.0.0.1 itself as an answer.
GOOD_IP = "203.0.113.7"
OTHER_GOOD_IP = "198.51.100.23"
SLOW_SECONDS = 3.0
FAST_TIMEOUT = (1.0, 0.5)

ANSWERS = {
    "/good": (200, GOOD_IP + "\n"),
    "/other": (200, OTHER_GOOD_IP),
    "/padded": (200, f"  \t{GOOD_IP} \r\n"),
    "/html": (200, "<!DOCTYPE html><html><body>Your IP is 203.0.113.7</body></html>"),
    "/garbage": (200, "hello, world"),
    "/empty": (200, ""),
    "/private": (200, "10.1.2.3"),
    "/shared": (200, "100.64.0.5"),
    "/loopback": (200, "127.0.0.1"),
    "/ipv6": (200, "2001:db8::7"),
    "/any": (200, "0.0.0.0"),
    "/fail": (500, "internal error"),
}


class IpServices(helpers.LocalHttpServer):
    """A few plain-text IP echo services on 127.0.0.1; `url("good")` and friends, and a hit counter."""

    def __init__(self):
        self.hits: list[str] = []
        services = self

        class Handler(helpers.QuietHandler):
            def do_GET(self):
                services.hits.append(self.path)
                if self.path == "/trickle":
                    return self.trickle(GOOD_IP)
                if self.path == "/slow":
                    time.sleep(SLOW_SECONDS)
                    status, body = 200, GOOD_IP
                else:
                    status, body = ANSWERS.get(self.path, (404, "not found"))
                payload = body.encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client gave up on a slow answer

            def trickle(self, body: str):
                """A good answer, one byte a second: no single read waits long, the whole takes long."""
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.flush()
                    for byte in body.encode():
                        time.sleep(1)
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                except OSError:
                    pass

        super().__init__(Handler)

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}"

    def urls(self, *names: str) -> str:
        """IP_LOOKUP_URLS for these services, in this order."""
        return ",".join(self.url(n) for n in names)


@pytest.fixture
def ip_services():
    services = IpServices()
    yield services
    services.close()


def closed_ip_service_url() -> str:
    """An IP service URL on 127.0.0.1 where nothing listens."""
    return f"http://127.0.0.1:{helpers.free_port()}/ip"


@pytest.fixture
def aws_env(monkeypatch):
    """In-process boto3 sees a region and fake credentials, and no endpoint or profile of the developer's."""
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # moto loads thousands of AMIs into each new EC2 backend unless told not to; no test uses them.
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")


@pytest.fixture(scope="session")
def one_cognito_signing_key():
    """moto parses the same RSA key (its jwks-private.json) for every new Cognito user pool,
    recovering the primes in pure Python: a tenth of a second per pool, and the tests make
    dozens. In this process the pools share the one parsed key: nothing writes to it (moto's key
    names its own kid, so joserfc never adds one)."""
    from joserfc import jwk

    parse = jwk.RSAKey.import_key
    parsed = {}

    def import_key(data, *args, **kwargs):
        if not isinstance(data, dict) or args or kwargs:
            return parse(data, *args, **kwargs)
        text = json.dumps(data, sort_keys=True)
        if text not in parsed:
            parsed[text] = parse(data)
        return parsed[text]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(jwk.RSAKey, "import_key", staticmethod(import_key))
        yield


@pytest.fixture
def mocked_aws(aws_env, one_cognito_signing_key):
    from moto import mock_aws

    with mock_aws():
        yield


@pytest.fixture
def ec2(mocked_aws):
    return cruddur_aws.client("ec2")


@pytest.fixture
def rds(mocked_aws):
    return cruddur_aws.client("rds")


@dataclass(frozen=True)
class DbGroup:
    group_id: str
    rule_id: str
    other_rule_id: str  # port 22, not ours


def make_db_group(ec2) -> DbGroup:
    """The bootcamp's set-up: a group whose inbound 5432 rule admits one old address, plus an SSH rule."""
    vpc_id = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    group_id = ec2.create_security_group(GroupName="cruddur-db", Description="cruddur db", VpcId=vpc_id)["GroupId"]
    postgres = ec2.authorize_security_group_ingress(
        GroupId=group_id,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "IpRanges": [{"CidrIp": OLD_CIDR, "Description": "GITPOD"}]}
        ],
    )["SecurityGroupRules"][0]["SecurityGroupRuleId"]
    ssh = ec2.authorize_security_group_ingress(
        GroupId=group_id,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "192.0.2.0/24"}]}],
    )["SecurityGroupRules"][0]["SecurityGroupRuleId"]
    return DbGroup(group_id, postgres, ssh)


def add_rule(ec2, group_id: str, permission: dict) -> str:
    """Authorize one inbound permission; its rule id."""
    answer = ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[permission])
    return answer["SecurityGroupRules"][0]["SecurityGroupRuleId"]


def foreign_rules(ec2, group_id: str) -> dict[str, str]:
    """Inbound rules sg.update must never rewrite, added to `group_id`, by kind.

    "self" is what the VPC default group has on real AWS: all traffic from its own members."""
    prefix_list = ec2.create_managed_prefix_list(PrefixListName="office", MaxEntries=2, AddressFamily="IPv4")
    prefix_list_id = prefix_list["PrefixList"]["PrefixListId"]
    permissions = {
        "self": {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": group_id}]},
        "group": {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "UserIdGroupPairs": [{"GroupId": group_id}]},
        "prefix list": {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "PrefixListIds": [{"PrefixListId": prefix_list_id}]},
        "all traffic": {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "10.0.0.0/8"}]},
        "udp": {"IpProtocol": "udp", "FromPort": 5432, "ToPort": 5432, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]},
        "ipv6": {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "Ipv6Ranges": [{"CidrIpv6": "2001:db8::/64"}]},
    }
    return {kind: add_rule(ec2, group_id, permission) for kind, permission in permissions.items()}


@pytest.fixture
def db_group(ec2) -> DbGroup:
    return make_db_group(ec2)


def set_instance_status(identifier: str, status: str) -> None:
    """Put moto's RDS instance (in-process or the test's server) in a state no API call leads to at once."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.rds.models import rds_backends

    rds_backends[DEFAULT_ACCOUNT_ID][REGION].describe_db_instances(identifier)[0].status = status


def rule_state(ec2, rule_id: str) -> dict:
    item = ec2.describe_security_group_rules(SecurityGroupRuleIds=[rule_id])["SecurityGroupRules"][0]
    return {k: item.get(k) for k in ("IpProtocol", "FromPort", "ToPort", "CidrIpv4", "CidrIpv6", "Description")}


@pytest.fixture(scope="session")
def moto_server(one_cognito_signing_key):
    """moto's server mode on 127.0.0.1 (a free port), for `inv` run as a subprocess."""
    from moto.server import ThreadedMotoServer

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
        server.stop()


@pytest.fixture
def moto_url(moto_server):
    """The server's URL, its accounts emptied first."""
    request = urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10).close()
    return moto_server


def server_client(moto_url: str, service: str):
    """A boto3 client on the moto server, to set it up and check its state afterwards."""
    import boto3

    return boto3.client(
        service,
        endpoint_url=moto_url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


class ThrottlingAws(helpers.LocalHttpServer):
    """An endpoint that answers every AWS query-protocol call with a throttling error, counting calls."""

    EC2 = (
        "<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message>"
        "</Error></Errors><RequestID>1</RequestID></Response>"
    )
    RDS = (
        "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message>"
        "</Error><RequestId>1</RequestId></ErrorResponse>"
    )

    def __init__(self):
        self.calls = 0
        endpoint = self

        class Handler(helpers.QuietHandler):
            def do_POST(self):
                endpoint.calls += 1
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                # EC2's API version differs from RDS's; each service has its own error document.
                payload = (endpoint.EC2 if "Version=2016-11-15" in body else endpoint.RDS).encode()
                self.send_response(503 if "Version=2016-11-15" in body else 400)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        super().__init__(Handler)
        self.url = self.base_url


@pytest.fixture
def pool(moto_url):
    """A Cognito user pool on the moto server: (client, pool id, the variables a task needs)."""
    idp = server_client(moto_url, "cognito-idp")
    pool_id = idp.create_user_pool(PoolName="cruddur-user-pool")["UserPool"]["Id"]
    return idp, pool_id, {"AWS_ENDPOINT_URL": moto_url, "AWS_COGNITO_USER_POOL_ID": pool_id}


@pytest.fixture
def throttling_aws():
    endpoint = ThrottlingAws()
    yield endpoint
    endpoint.close()


def create_instance(rds, identifier: str = "cruddur-db-instance", **options) -> dict:
    """An RDS PostgreSQL instance in moto, with the bootcamp's class, user and storage."""
    return rds.create_db_instance(
        DBInstanceIdentifier=identifier,
        DBInstanceClass="db.t3.micro",
        Engine="postgres",
        MasterUsername="cruddurroot",
        MasterUserPassword="a-long-secret",
        AllocatedStorage=20,
        **options,
    )["DBInstance"]
