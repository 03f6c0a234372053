"""Fixtures and helpers for the Lambda tests: the handler module, sample events, one wheel
cache and one built package per test session (so the suite downloads wheels once).

conftest.py registers it as a plugin (`pytest_plugins`), so its session fixtures are built once
for all the modules that use them."""

from __future__ import annotations

import base64
import hashlib
import json
import platform
import shutil
import socket
import sys
import tempfile
import uuid
from pathlib import Path

import psycopg
import pytest

from cruddur.lambda_build import local as lambda_local, package as lambda_package
from tests import helpers
from tests.helpers import free_port

# The zip the tests run must load on this machine: its Python version and architecture.
LOCAL_RUNTIME = f"python{sys.version_info.major}.{sys.version_info.minor}"
LOCAL_ARCHITECTURE = {"x86_64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}[platform.machine()]


def sample_event(file: str = "confirm_sign_up.json", **attributes: str) -> dict:
    """A shipped sample event, with a fresh sub and handle unless given, and attributes overridden."""
    event = json.loads((lambda_local.EVENTS_DIR / file).read_text())
    user = event["request"]["userAttributes"]
    fresh = uuid.uuid4().hex[:10]
    user["sub"] = str(uuid.uuid4())
    user["preferred_username"] = f"user_{fresh}"
    user.update(attributes)
    event["userName"] = user["sub"]
    return event


def users(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT display_name, email, handle, cognito_user_id FROM public.users ORDER BY created_at"
        ).fetchall()


@pytest.fixture
def post_confirmation():
    """A freshly imported handler module (cold start), its connection closed afterwards."""
    module = lambda_local.load_handler()
    yield module
    module.close_connection()


@pytest.fixture
def silent_port():
    """A TCP port that accepts connections and never answers: only the connect timeout ends a wait."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield s.getsockname()[1]


@pytest.fixture(scope="session")
def lambda_wheel_cache():
    folder = Path(tempfile.mkdtemp(prefix="cruddur-wheels-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def lambda_zip(lambda_wheel_cache):
    """The function's zip, built once for this machine's Python and architecture."""
    folder = Path(tempfile.mkdtemp(prefix="cruddur-zip-"))
    yield lambda_package.build(
        runtime=LOCAL_RUNTIME,
        architecture=LOCAL_ARCHITECTURE,
        output=folder / "cruddur-post-confirmation.zip",
        wheel_cache=lambda_wheel_cache,
    )
    shutil.rmtree(folder, ignore_errors=True)


class EnvironmentTooLargeLambda(helpers.LocalHttpServer):
    """A Lambda endpoint on 127.0.0.1 whose function runs `code_sha256` (or any code uploaded to
    it) and refuses any new environment the way Lambda refuses one over its 4 KB limit: the
    message quotes the variables."""

    REFUSAL = (
        "Lambda was unable to configure your environment variables because the environment variables"
        " you have provided exceeded the 4KB limit. String measured: {}"
    )

    def __init__(self, code_sha256: str = "", runtime: str = lambda_package.DEFAULT_RUNTIME, handler: str = lambda_package.HANDLER):
        configuration = {
            "FunctionName": lambda_package.FUNCTION_NAME, "CodeSha256": code_sha256, "Runtime": runtime,
            "Handler": handler, "State": "Active", "LastUpdateStatus": "Successful",
        }  # fmt: skip
        endpoint = self
        self.configuration_updates = 0

        class Handler(helpers.QuietHandler):
            def do_GET(self):
                self._answer(200, {"Configuration": configuration, "Code": {}})

            def do_PUT(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                if self.path.endswith("/code"):
                    zipped = base64.b64decode(body["ZipFile"])
                    configuration["CodeSha256"] = base64.b64encode(hashlib.sha256(zipped).digest()).decode()
                    self._answer(200, configuration)
                    return
                endpoint.configuration_updates += 1
                variables = (body.get("Environment") or {}).get("Variables") or {}
                refusal = endpoint.REFUSAL.format(json.dumps(variables, separators=(",", ":")))
                self._answer(400, {"Type": "User", "message": refusal}, "InvalidParameterValueException")

            def _answer(self, status: int, document: dict, error_type: str | None = None):
                payload = json.dumps(document).encode()
                headers = {"Content-Type": "application/json", "Content-Length": str(len(payload))}
                if error_type:
                    headers["x-amzn-ErrorType"] = error_type  # where botocore reads a REST API's error code
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

        super().__init__(Handler)
        self.url = self.base_url

    def client(self):
        import boto3

        return boto3.client(
            "lambda", endpoint_url=self.url, region_name="us-east-1",
            aws_access_key_id="testing", aws_secret_access_key="testing",
        )  # fmt: skip


@pytest.fixture
def environment_too_large_lambda():
    endpoint = EnvironmentTooLargeLambda()
    yield endpoint
    endpoint.close()
