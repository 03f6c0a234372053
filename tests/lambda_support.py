"""Fixtures and helpers for the Lambda tests: the handler module, sample events, one wheel
cache and one built package per test session (so the suite downloads wheels once).

conftest.py registers it as a plugin (`pytest_plugins`), so its session fixtures are built once
for all the modules that use them."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import platform
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

from cruddur.lambda_build import local as lambda_local
from cruddur.lambda_build import package as lambda_package
from cruddur.lambda_build.defaults import FUNCTION_NAME
from tests import helpers
from tests.helpers import taken_port

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
        return conn.execute("SELECT display_name, email, handle, cognito_user_id FROM public.users ORDER BY created_at").fetchall()


@pytest.fixture
def post_confirmation():
    """A freshly imported handler module (cold start), its connection closed afterwards."""
    module = lambda_local.load_handler()
    yield module
    module.close_connection()


@pytest.fixture
def silent_port():
    """A TCP port that accepts connections and never answers: only the connect timeout ends a wait."""
    with taken_port() as port:
        yield port


# The one other runtime the tests build for (no byte code in its zip): the next Python.
OTHER_RUNTIME = "python3.12" if LOCAL_RUNTIME != "python3.12" else "python3.13"
# A build may wait this long for another worker's download of the wheels.
WHEELS_LOCK_TIMEOUT = 600


def pytest_collection_modifyitems(items):
    """A test that needs the run's zips may be the one that builds them (two pip downloads and
    installs), or wait on the lock while another worker does: pytest-timeout counts fixture setup,
    so such a test is bounded by the lock's wait, not the usual 120 s a loaded machine can exceed."""
    for item in items:
        if "lambda_build_cache" in getattr(item, "fixturenames", ()) and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(WHEELS_LOCK_TIMEOUT))


def shared_folder(tmp_path_factory) -> Path:
    """A folder all the workers of this test run share (pytest-xdist gives each worker a base
    temp of its own inside the run's), and that a run of its own alone uses."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def lambda_build_cache(tmp_path_factory):
    """The run's wheel cache, filled once for all the workers (the first one downloads under a
    file lock, the others wait and reuse it), and the function's zips for this machine's Python
    and for the other runtime, built once beside it. Nothing is written in the checkout."""
    from filelock import FileLock

    folder = shared_folder(tmp_path_factory) / "lambda-build"
    folder.mkdir(exist_ok=True)
    cache, described = folder / "wheels", folder / "packages.json"
    with FileLock(folder / "lock", timeout=WHEELS_LOCK_TIMEOUT):
        if not described.exists():
            # The other runtime's wheels too: two tests build for it, on any worker.
            other = lambda_package.build(OTHER_RUNTIME, LOCAL_ARCHITECTURE, folder / "other.zip", cache)
            built = lambda_package.build(LOCAL_RUNTIME, LOCAL_ARCHITECTURE, folder / "cruddur-post-confirmation.zip", cache)
            described.write_text(json.dumps([_package_document(built), _package_document(other)]))
    local, other = (
        lambda_package.Package(**{**document, "path": Path(document["path"])}) for document in json.loads(described.read_text())
    )
    return cache, local, other


def _package_document(package: lambda_package.Package) -> dict:
    return {**dataclasses.asdict(package), "path": str(package.path)}


@pytest.fixture(scope="session")
def lambda_wheel_cache(lambda_build_cache):
    return lambda_build_cache[0]


@pytest.fixture(scope="session")
def lambda_zip(lambda_build_cache):
    """The function's zip, built once per run for this machine's Python and architecture (read only)."""
    return lambda_build_cache[1]


@pytest.fixture(scope="session")
def other_runtime_zip(lambda_build_cache):
    """The function's zip for OTHER_RUNTIME (not this Python), built once per run (read only)."""
    return lambda_build_cache[2]


@pytest.fixture
def lambda_build_defaults(monkeypatch, tmp_path, lambda_wheel_cache):
    """Builds that name no output or cache (the lambda tasks run in-process) write their zip in
    this test's folder and take wheels from the run's cache, never the checkout's dist/ and .cache/."""
    monkeypatch.setattr(lambda_package, "DEFAULT_OUTPUT", tmp_path / "dist" / lambda_package.DEFAULT_OUTPUT.name)
    monkeypatch.setattr(lambda_package, "DEFAULT_WHEEL_CACHE", lambda_wheel_cache)
    return lambda_package.DEFAULT_OUTPUT


class FakeLambda(helpers.LocalHttpServer):
    """A Lambda endpoint on 127.0.0.1 for states moto cannot show: one function whose
    configuration the test controls, code uploads applied to it, calls counted."""

    def __init__(self, code_sha256: str = "", runtime: str = lambda_package.DEFAULT_RUNTIME, handler: str = lambda_package.HANDLER):
        self.configuration = {
            "FunctionName": FUNCTION_NAME,
            "CodeSha256": code_sha256,
            "Runtime": runtime,
            "Handler": handler,
            "State": "Active",
            "LastUpdateStatus": "Successful",
        }
        self.reads = self.code_uploads = self.configuration_updates = 0
        endpoint = self

        class Handler(helpers.QuietHandler):
            def do_GET(self):
                endpoint.reads += 1
                self._answer(200, {"Configuration": endpoint.read_configuration(), "Code": {}})

            def do_PUT(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                if self.path.endswith("/code"):
                    endpoint.code_uploads += 1
                    zipped = base64.b64decode(body["ZipFile"])
                    endpoint.configuration["CodeSha256"] = base64.b64encode(hashlib.sha256(zipped).digest()).decode()
                    self._answer(200, endpoint.configuration)
                    return
                endpoint.configuration_updates += 1
                self._answer(*endpoint.update_configuration(body))

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

    def read_configuration(self) -> dict:
        return self.configuration

    def update_configuration(self, body: dict) -> tuple:
        self.configuration.update(body)
        return 200, self.configuration

    def client(self):
        import boto3

        return boto3.client(
            "lambda",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


class FinishingUpdateLambda(FakeLambda):
    """The function is in the middle of an update when first read; the update it was running
    leaves `code_sha256` behind (another deploy of the same zip, say)."""

    def __init__(self, code_sha256: str, runtime: str):
        super().__init__("stale-sha", runtime)
        self.finished_sha = code_sha256

    def read_configuration(self) -> dict:
        if self.reads == 1:
            return {**self.configuration, "LastUpdateStatus": "InProgress"}
        self.configuration["CodeSha256"] = self.finished_sha
        return self.configuration
