"""A plain (not editable) install of the project serves the client and the activities from any folder."""

import json
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

from tests.helpers import ROOT, add_user

# Run in a fresh virtual environment, from a folder that is not the checkout: only the installed
# copy of `cruddur` can answer, with its templates shipped inside it.
PROBE = """
import json, sys
import cruddur
from cruddur import activities
from cruddur.postgres.client import Database

with Database(sys.argv[1]) as db:
    created = activities.create_activity(db, "andrewbrown", "from an installed copy", "1-hour")
    feed = activities.home_activities(db)
print(json.dumps({"cruddur": cruddur.__file__, "errors": created["errors"], "feed": [a["message"] for a in feed]}))
"""


def _build_wheel(tmp_path: Path) -> Path:
    # A copy of the sources: building in the checkout would leave build/ and *.egg-info in it.
    source = tmp_path / "source"
    source.mkdir()
    shutil.copy(ROOT / "pyproject.toml", source)
    shutil.copytree(ROOT / "cruddur", source / "cruddur", ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-index", "--no-build-isolation", "-w", wheels, source], check=True, timeout=120)
    return next(wheels.glob("cruddur-*.whl"))


def _fresh_venv(tmp_path: Path) -> Path:
    """A new virtual environment that borrows this one's third-party packages (psycopg), offline.

    Its .pth line names this venv's site-packages; Python reads .pth files only in a site folder
    itself, so this venv's own editable install of the checkout does not come along."""
    home = tmp_path / "venv"
    venv.create(home, with_pip=False)
    python = home / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True, check=True
    ).stdout.strip()
    (Path(purelib) / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def test_a_plain_install_serves_the_client_and_activities_from_another_folder(tmp_path, schema_url):
    add_user(schema_url, "andrewbrown", "Andrew Brown")
    python = _fresh_venv(tmp_path)
    wheel = _build_wheel(tmp_path)
    subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", "--python", python, "install", "--no-deps", "--no-index", wheel],
        check=True,
        timeout=120,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run([python, "-c", PROBE, schema_url], cwd=elsewhere, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert Path(answer["cruddur"]).is_relative_to(tmp_path / "venv")
    assert answer["errors"] is None
    assert "from an installed copy" in answer["feed"]
