"""Fixtures and helpers for the Lambda tests: the handler module, sample events, one wheel
cache and one built package per test session (so the suite downloads wheels once).

Test modules load it with `pytest_plugins = ["lambda_support"]`: registered once as a plugin,
its session fixtures are shared by all of them (imported into each module, they would not be)."""

from __future__ import annotations

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

from cruddur import lambda_local, lambda_package
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
