"""What the sg tasks cost, each against its baseline, run alternately in one process tree.

1. `inv --list` as it is (boto3 and requests imported only on rds/sg paths) against the same
   command with boto3 and requests imported up front: what the lazy imports save every start.
2. `inv sg.update` (look-up, validation, describe, modify) against the bootcamp's two steps done
   bare in Python (GET the IP, modify-security-group-rules with whatever came back), both against
   moto's server and an IP echo service on 127.0.0.1.
3. `inv sg.update` with only AWS credentials (it finds the instance's group and its own rule)
   against the same with DB_SG_ID and DB_SG_RULE_ID set: what not having to set them costs.

Run: python bench/bench_sg.py [rounds]
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from _timing import compare, time_command

from cruddur.config import Settings

ROOT = Path(__file__).resolve().parent.parent
INV = str(Path(sys.executable).with_name("inv"))

EAGER_LIST = "import boto3, requests\nfrom invoke.main import program\nprogram.run(['inv', '--list'])"
BARE_UPDATE = """
import os, boto3, requests
ip = requests.get(os.environ["IP_LOOKUP_URLS"], timeout=5).text.strip()
boto3.client("ec2").modify_security_group_rules(GroupId=os.environ["DB_SG_ID"], SecurityGroupRules=[{
    "SecurityGroupRuleId": os.environ["DB_SG_RULE_ID"],
    "SecurityGroupRule": {"Description": "GITPOD", "IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432,
                          "CidrIpv4": ip + "/32"}}])
"""


class EchoService:
    """A plain-text IP echo service on 127.0.0.1 that answers an alternating pair of addresses,
    so every sg.update has a change to make."""

    def __init__(self):
        answers = ["203.0.113.7", "203.0.113.8"]

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                answers.reverse()
                payload = answers[0].encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        host, port = self.server.server_address[:2]
        self.url = f"http://{host}:{port}/ip"


def main(rounds: int) -> None:
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    os.environ["MOTO_EC2_LOAD_DEFAULT_AMIS"] = "false"
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    echo = EchoService()
    try:
        ec2 = boto3.client(
            "ec2", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        vpc_id = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
        group_id = ec2.create_security_group(GroupName="bench", Description="bench", VpcId=vpc_id)["GroupId"]
        rule_id = ec2.authorize_security_group_ingress(
            GroupId=group_id,
            IpPermissions=[{"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "IpRanges": [{"CidrIp": "198.51.100.10/32"}]}],
        )["SecurityGroupRules"][0]["SecurityGroupRuleId"]
        boto3.client(
            "rds", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
        ).create_db_instance(
            DBInstanceIdentifier="cruddur-db-instance",
            DBInstanceClass="db.t3.micro",
            Engine="postgres",
            MasterUsername="cruddurroot",
            MasterUserPassword="Long-Secret-2024",
            AllocatedStorage=20,
            VpcSecurityGroupIds=[group_id],
        )
        project = Settings.variables()
        env = {k: v for k, v in os.environ.items() if k not in project and not k.startswith("AWS_")}
        env.update(
            AWS_ENDPOINT_URL=endpoint,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_DEFAULT_REGION="us-east-1",
            AWS_EC2_METADATA_DISABLED="true",
            DB_SG_ID=group_id,
            DB_SG_RULE_ID=rule_id,
            IP_LOOKUP_URLS=echo.url,
        )

        compare(
            "inv --list, lazy vs eager boto3+requests",
            lambda: time_command([INV, "--list"], cwd=ROOT, env=env, stdin=subprocess.DEVNULL),
            lambda: time_command([sys.executable, "-c", EAGER_LIST], cwd=ROOT, env=env, stdin=subprocess.DEVNULL),
            rounds,
        )
        compare(
            "inv sg.update vs bare GET + modify-security-group-rules",
            lambda: time_command([INV, "sg.update"], cwd=ROOT, env=env, stdin=subprocess.DEVNULL),
            lambda: time_command([sys.executable, "-c", BARE_UPDATE], cwd=ROOT, env=env, stdin=subprocess.DEVNULL),
            rounds,
        )
        found = {k: v for k, v in env.items() if k not in ("DB_SG_ID", "DB_SG_RULE_ID")}
        compare(
            "inv sg.update, found from the instance vs DB_SG_ID/DB_SG_RULE_ID set",
            lambda: time_command([INV, "sg.update"], cwd=ROOT, env=found, stdin=subprocess.DEVNULL),
            lambda: time_command([INV, "sg.update"], cwd=ROOT, env=env, stdin=subprocess.DEVNULL),
            rounds,
        )
    finally:
        echo.server.shutdown()
        moto.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 15)
