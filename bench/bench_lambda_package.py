"""Function zip: build time with a cold wheel cache (pip downloads), with the wheels at hand
(offline pip install and compile), and as a rebuild (the installed requirements taken from the
cache, compressed; the handler alone compiled and compressed), run alternately; and the zip's
size against the 6 MB target (aim: 4 MB).

    python bench/bench_lambda_package.py [--runtime python3.12] [--arch x86_64] [--cold 2] [--warm 5]

Cold builds download from the package index, so they need the network; the others do not.
Prints figures and ratios, no verdicts.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
import zipfile
from pathlib import Path

from cruddur.lambda_build import package as lambda_package


def timed_build(runtime: str, arch: str, output: Path, cache: Path) -> tuple[float, lambda_package.Package]:
    started = time.perf_counter()
    package = lambda_package.build(runtime=runtime, architecture=arch, output=output, wheel_cache=cache)
    return time.perf_counter() - started, package


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtime", default=lambda_package.DEFAULT_RUNTIME, help="Lambda runtime to build for")
    parser.add_argument("--arch", default="x86_64", help="x86_64 or arm64")
    parser.add_argument("--cold", type=int, default=2, help="builds, each with an empty wheel cache")
    parser.add_argument("--warm", type=int, default=5, help="builds from the downloaded wheels alone, each followed by a rebuild")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-lambda-zip-") as tmp:
        tmp = Path(tmp)
        cold, warm, shas = [], [], set()
        for i in range(args.cold):
            seconds, package = timed_build(args.runtime, args.arch, tmp / f"cold{i}.zip", tmp / f"cache{i}")
            cold.append(seconds)
            shas.add(package.code_sha256)
        rebuilds = []
        for i in range(args.warm):
            wheels_only = tmp / f"wheels{i}"  # the downloaded wheels, nothing installed yet
            wheels_only.mkdir()
            for wheel in (tmp / "cache0").glob("*.whl"):
                shutil.copy(wheel, wheels_only)
            seconds, package = timed_build(args.runtime, args.arch, tmp / f"warm{i}.zip", wheels_only)
            warm.append(seconds)
            shas.add(package.code_sha256)
            seconds, package = timed_build(args.runtime, args.arch, tmp / f"rebuild{i}.zip", wheels_only)
            rebuilds.append(seconds)
            shas.add(package.code_sha256)

        print(f"package build for {args.runtime} on {args.arch}")
        print(
            f"  cold wheel cache (pip download + install), {len(cold)} builds: "
            f"median {statistics.median(cold):.2f} s   min {min(cold):.2f} s   max {max(cold):.2f} s"
        )
        print(
            f"  warm wheel cache (offline install),        {len(warm)} builds: "
            f"median {statistics.median(warm):.2f} s   min {min(warm):.2f} s   max {max(warm):.2f} s"
        )
        print(
            f"  rebuild (installed requirements cached),   {len(rebuilds)} builds: "
            f"median {statistics.median(rebuilds):.2f} s   min {min(rebuilds):.2f} s   max {max(rebuilds):.2f} s"
        )
        print(f"  ratio warm/cold (median)                   {statistics.median(warm) / statistics.median(cold):.2f}x")
        print(f"  ratio rebuild/warm (median)                {statistics.median(rebuilds) / statistics.median(warm):.2f}x")
        print(f"  distinct CodeSha256 over all {len(cold) + len(warm) + len(rebuilds)} builds: {len(shas)} ({', '.join(sorted(shas))})")

        with zipfile.ZipFile(package.path) as archive:
            biggest = sorted(archive.infolist(), key=lambda info: info.compress_size, reverse=True)[:5]
        print("\nzip size")
        print(
            f"  zipped     {package.size:>10,} bytes = {package.size / 1e6:.2f} MB = {package.size / 2**20:.2f} MiB"
            f"   ({package.size / 6e6:.2f}x the 6 MB target, {package.size / 4e6:.2f}x the 4 MB aim)"
        )
        print(
            f"  unzipped   {package.unzipped_size:>10,} bytes = {package.unzipped_size / 2**20:.2f} MiB"
            f"   ({package.unzipped_size / lambda_package.MAX_UNZIPPED_BYTES:.3f}x Lambda's 250 MB)"
        )
        print(f"  files      {package.files}")
        print("  largest entries (zipped):")
        for info in biggest:
            print(f"    {info.compress_size:>10,}  {info.filename}")


if __name__ == "__main__":
    main()
