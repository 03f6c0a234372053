"""Post-confirmation cold start: the zip with byte code against the same zip without it, in URL
mode and in IAM mode (token signing included).

    python bench/bench_lambda_cold_start.py [--rounds 15]

Each run is a new process on the extracted zip, read-only as Lambda's /var/task is, with no
writable byte-code cache (-B) and nothing from the venv (-s -S, an environment of its own): import the handler, then its
first call (connect + insert) against a local database. The two zips run alternately. Uses
TEST_DATABASE_URL when set (a server URL: a throwaway database is made on it), else an embedded
PostgreSQL in a temporary folder. IAM mode adds what DB_AUTH=iam costs before connecting: botocore's
import (from this venv, with its byte code, after the zip on the path, as Lambda's runtime
provides it), its credentials and the token's signature; the connection itself stays the URL's,
as no local server checks tokens (and the embedded build has no TLS). Prints figures and ratios (target <= 0.7x, aim <= 0.6x; zip target <= 6 MB), no verdicts.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import stat
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from pathlib import Path

from _database import ROOT, schema_database

from cruddur.lambda_build import local as lambda_local
from cruddur.lambda_build import package as lambda_package

CHILD = """
import json, os, sys, time
started = time.perf_counter()
import cruddur_post_confirmation
imported = time.perf_counter()
if os.environ.get("DB_AUTH") == "iam":
    cruddur_post_confirmation.iam_auth(os.environ).token()
signed = time.perf_counter()
cruddur_post_confirmation.handle(json.loads(sys.stdin.read()), os.environ["CONNECTION_URL"])
done = time.perf_counter()
print(json.dumps({"import": imported - started, "sign": signed - imported, "first_call": done - signed}))
"""


def event() -> dict:
    sample = json.loads(lambda_local.DEFAULT_EVENT.read_text())
    sub = str(uuid.uuid4())
    sample["userName"] = sub
    sample["request"]["userAttributes"].update(sub=sub, preferred_username=f"u_{sub[:13]}")
    return sample


def extract(zip_path: Path, folder: Path, bytecode: bool) -> Path:
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(folder)
    if not bytecode:
        for cache in list(folder.rglob("__pycache__")):
            shutil.rmtree(cache)
    for path in folder.rglob("*"):  # read-only, as /var/task is
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    return folder


def cold_start(task_dir: Path, environment: dict[str, str]) -> dict:
    """One new process in the task folder (the first entry of its path, as /var/task is on Lambda)."""
    started = time.perf_counter()
    child = subprocess.run(
        # The environment is this one's alone (no -E): PYTHONPATH, in IAM mode, is where botocore is.
        [sys.executable, "-s", "-S", "-B", "-c", CHILD],
        cwd=task_dir,
        input=json.dumps(event()),
        capture_output=True,
        text=True,
        check=True,
        env={**environment, "PATH": os.environ.get("PATH", "")},
    )
    result = json.loads(child.stdout)
    result["process"] = time.perf_counter() - started
    return result


def url_mode(url: str) -> dict[str, str]:
    return {"CONNECTION_URL": url}


def iam_mode(url: str) -> dict[str, str]:
    """What lambda.deploy --set-env gives the function, plus the credentials Lambda's role gives it."""
    import botocore

    return {
        **url_mode(url),
        "DB_AUTH": "iam",
        "DB_HOST": "cruddur-db-instance.abc.us-east-1.rds.amazonaws.com",
        "DB_PORT": "5432",
        "DB_NAME": "cruddur",
        "DB_USER": "cruddur_signup",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_SESSION_TOKEN": "bench",
        "AWS_EC2_METADATA_DISABLED": "true",
        # botocore after the zip on the path (the task folder comes first), as Lambda's runtime puts its own.
        "PYTHONPATH": str(Path(botocore.__file__).parent.parent),
    }


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f} ms"


def total(run: dict) -> float:
    return run["import"] + run["sign"] + run["first_call"]


def report(title: str, new: list[dict], old: list[dict], import_label: str) -> None:
    print(f"\n{title}")
    print(f"  {'':<34}{'with byte code':>16}{'without':>12}{'ratio':>9}")
    steps = [(import_label, "import"), ("botocore + token", "sign"), ("first call (connect + insert)", "first_call")]
    for label, key in steps:
        a, b = statistics.median(r[key] for r in new), statistics.median(r[key] for r in old)
        if b:
            print(f"  {label:<34}{ms(a):>16}{ms(b):>12}{a / b:>8.2f}x")
    a = statistics.median(total(r) for r in new)
    b = statistics.median(total(r) for r in old)
    print(f"  {'import + first call':<34}{ms(a):>16}{ms(b):>12}{a / b:>8.2f}x   (target <= 0.7x, aim <= 0.6x)")
    a, b = statistics.median(r["process"] for r in new), statistics.median(r["process"] for r in old)
    print(f"  {'whole process':<34}{ms(a):>16}{ms(b):>12}{a / b:>8.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="cold starts of each zip and mode, alternating")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-cold-") as tmp, schema_database() as url:
        tmp = Path(tmp)
        try:
            package = lambda_package.build(output=tmp / "fn.zip", wheel_cache=ROOT / ".cache" / "lambda-wheels")
            if not package.bytecode:
                sys.exit(package.bytecode_note)
            with_bytecode = extract(package.path, tmp / "with-bytecode", bytecode=True)
            without = extract(package.path, tmp / "without-bytecode", bytecode=False)
            print(f"Python {sys.version.split()[0]}, {package.runtime} zip")
            modes = {"url": url_mode(url), "iam": iam_mode(url)}
            runs = {(mode, zipped): [] for mode in modes for zipped in ("new", "old")}
            for environment in modes.values():  # warm the OS page cache alike
                cold_start(with_bytecode, environment), cold_start(without, environment)
            for _ in range(args.rounds):
                for mode, environment in modes.items():
                    runs[mode, "new"].append(cold_start(with_bytecode, environment))
                    runs[mode, "old"].append(cold_start(without, environment))

            how = f"{args.rounds} alternating runs each (python -s -S -B, read-only task folder)"
            report(f"URL mode (CONNECTION_URL), {how}", runs["url", "new"], runs["url", "old"], "import handler (+psycopg)")
            report(f"IAM mode (+ botocore token), {how}", runs["iam", "new"], runs["iam", "old"], "import handler (+psycopg)")
            print("\nIAM mode with byte code against URL mode without it (the zip before byte code and IAM):")
            a = statistics.median(total(r) for r in runs["iam", "new"])
            b = statistics.median(total(r) for r in runs["url", "old"])
            print(f"  {'import + first call':<34}{ms(a):>16}{ms(b):>12}{a / b:>8.2f}x")
            print(
                f"\nzip: {package.size:,} bytes = {package.size / 1e6:.2f} MB ({package.size / 6e6:.2f}x the 6 MB target),"
                f" {package.unzipped_size / 2**20:.1f} MiB unzipped, {package.files} files"
            )
        finally:
            for path in tmp.rglob("*"):  # writable again, so that the folder can be removed
                if path.is_dir():
                    path.chmod(0o755)


if __name__ == "__main__":
    main()
