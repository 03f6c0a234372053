"""The post-confirmation function's zip: the handler plus psycopg[binary] for Lambda's platform.

The zip is reproducible: the same handler, requirements, runtime and architecture give the same
bytes (so the same CodeSha256), whatever the files' mtimes or the umask: the requirements' files
in name order, then the handler's. Downloaded wheels are cached, and so are the requirements as
installed, compiled and compressed for each set of inputs, so a rebuild is quick and needs no network.

Lambda's /var/task is read-only, so a module without byte code in the zip is compiled again at
every cold start. When the building interpreter is the runtime's Python version, the zip carries
hash-based byte code (no timestamps: reproducible, and checked against the source at import).
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .. import children
from ..errors import PackageError
from ..files import atomic_write
from ..formats import byte_size
from ..progress import Progress, no_progress
from ..timeouts import COMPILE_LIMIT, PIP_LIMIT
from .defaults import ARCHITECTURES, DEFAULT_ARCHITECTURE, DEFAULT_RUNTIME, HANDLER

# The function's sources live in the checkout's lambda/ (it ships alone, not in this package):
# packaging is work on a checkout, so these defaults name the one this module sits in.
CHECKOUT = Path(__file__).resolve().parents[2]
HANDLER_FILE = CHECKOUT / "lambda" / "cruddur_post_confirmation.py"
REQUIREMENTS_FILE = CHECKOUT / "lambda" / "requirements.txt"
DEFAULT_OUTPUT = CHECKOUT / "dist" / "cruddur-post-confirmation.zip"
DEFAULT_WHEEL_CACHE = CHECKOUT / ".cache" / "lambda-wheels"
# Where Lambda unpacks the zip: the path byte code names its source by (tracebacks show it).
TASK_ROOT = "/var/task"

# Lambda's limits for a zip uploaded directly: https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html
MAX_ZIPPED_BYTES = 50 * 1024 * 1024
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024

# Every entry gets the same time (the earliest a zip can store) and one of two modes.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o100644
EXECUTABLE_MODE = 0o100755

# What the runtime never reads: type stubs, C headers and sources, console scripts, byte code
# outside __pycache__. From each *.dist-info only METADATA (importlib.metadata reads it:
# psycopg.__version__ does) and the licences stay.
DROPPED_TOP_DIRS = {"bin", "include"}
DROPPED_SUFFIXES = {".pyo", ".pyi", ".pxd", ".pyx", ".c", ".h"}
DROPPED_NAMES = {"py.typed"}
LICENCE_NAMES = ("LICENSE", "LICENCE", "COPYING", "NOTICE", "AUTHORS")


@dataclass(frozen=True)
class Package:
    path: Path
    size: int  # bytes, zipped
    unzipped_size: int
    files: int
    code_sha256: str  # base64 SHA-256 of the zip: what Lambda reports as CodeSha256
    runtime: str
    architecture: str
    bytecode: bool  # the modules' byte code is in the zip
    handler: str = HANDLER

    @property
    def bytecode_note(self) -> str | None:
        """One line on a zip without byte code: why, and what it costs."""
        if self.bytecode:
            return None
        return (
            f"no byte code in the zip: it is built by Python {building_python()}, and only Python"
            f" {python_version(self.runtime)} compiles byte code for {self.runtime} (cold starts will be slower;"
            f" build with Python {python_version(self.runtime)} or pass --runtime python{building_python()})"
        )


def building_python() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def python_version(runtime: str) -> str:
    """'python3.12' -> '3.12'; PackageError for anything that is not a Python runtime name."""
    match = re.fullmatch(r"python(3\.\d+)", runtime)
    if not match:
        raise PackageError(f"runtime {runtime!r} is not a Lambda Python runtime (expected e.g. {DEFAULT_RUNTIME})")
    return match.group(1)


def platform_tags(runtime: str, architecture: str) -> list[str]:
    """The wheel platforms the runtime's OS can load, most specific first: manylinux2014, and
    the manylinux_2_X tags up to its glibc (some wheels, psycopg-binary's aarch64 ones among
    them, exist only as manylinux_2_28)."""
    try:
        machine = ARCHITECTURES[architecture]
    except KeyError:
        raise PackageError(f"architecture {architecture!r} is not one of Lambda's: {', '.join(ARCHITECTURES)}") from None
    minor = int(python_version(runtime).split(".")[1])
    # python3.12 and later run on Amazon Linux 2023 (glibc 2.34), older ones on Amazon Linux 2 (2.26).
    glibc_minor = 34 if minor >= 12 else 26
    tags = [f"manylinux_2_{m}_{machine}" for m in range(glibc_minor, 17, -1)]
    return tags + [f"manylinux2014_{machine}"]


def code_sha256(data: bytes) -> str:
    """Lambda's CodeSha256: the base64 (not hex) SHA-256 of the zip's bytes."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


@dataclass(frozen=True)
class Plan:
    """What build would write, before anything is."""

    output: Path
    runtime: str
    architecture: str
    platforms: tuple[str, ...]  # the wheel platforms pip would take
    bytecode: bool  # the zip would carry byte code
    replaces: bool  # a file is at `output` already


def plan(
    runtime: str = DEFAULT_RUNTIME, architecture: str = DEFAULT_ARCHITECTURE, output: Path | None = None, handler_file: Path = HANDLER_FILE
) -> Plan:
    """build's inputs checked as build checks them, and where it would write (default
    DEFAULT_OUTPUT, read at call time); nothing is written."""
    output = DEFAULT_OUTPUT if output is None else output
    platforms = tuple(platform_tags(runtime, architecture))
    if not handler_file.is_file():
        raise PackageError(f"the handler {handler_file} does not exist")
    bytecode = python_version(runtime) == building_python()
    try:
        replaces = output.exists()
    except OSError:  # a name too long, say: the write says so
        replaces = False
    return Plan(output, runtime, architecture, platforms, bytecode, replaces)


def build(
    runtime: str = DEFAULT_RUNTIME,
    architecture: str = DEFAULT_ARCHITECTURE,
    output: Path | None = None,
    wheel_cache: Path | None = None,
    handler_file: Path = HANDLER_FILE,
    requirements: Path = REQUIREMENTS_FILE,
    max_zipped_bytes: int = MAX_ZIPPED_BYTES,
    max_unzipped_bytes: int = MAX_UNZIPPED_BYTES,
    progress: Progress = no_progress,
) -> Package:
    """Build the function's zip at `output` (default DEFAULT_OUTPUT, read at call time) and describe
    it; wheels come from `wheel_cache` (default DEFAULT_WHEEL_CACHE). progress(step, done_bytes)
    hears each step."""
    planned = plan(runtime, architecture, output, handler_file)
    output, bytecode = planned.output, planned.bytecode
    wheel_cache = DEFAULT_WHEEL_CACHE if wheel_cache is None else wheel_cache
    target = _PipTarget(python_version(runtime), planned.platforms, architecture)
    zipped_requirements = _installed_requirements(requirements, wheel_cache, target, bytecode, progress)
    with tempfile.TemporaryDirectory(prefix="cruddur-lambda-") as staging:
        site = Path(staging)
        (site / handler_file.name).write_bytes(_read(handler_file, "the handler"))
        if bytecode:
            progress("compiling the handler's byte code")
            _compile(site)
        handler_entries = _entries(site)
    with zipfile.ZipFile(io.BytesIO(zipped_requirements)) as archive:
        infos = archive.infolist()
    clashes = sorted(set(handler_entries) & {info.filename for info in infos})
    if clashes:
        raise PackageError(f"the requirements install {', '.join(clashes)}, which the handler's files would shadow: rename the handler")
    files = len(infos) + len(handler_entries)
    unzipped = sum(info.file_size for info in infos) + sum(len(data) for data in handler_entries.values())
    if unzipped > max_unzipped_bytes:
        raise PackageError(f"the function would unzip to {byte_size(unzipped)}, over Lambda's limit of {byte_size(max_unzipped_bytes)}")
    progress(f"zipping the handler's {len(handler_entries)} files after the requirements' {len(infos)}", unzipped)
    data = _zip(handler_entries, onto=zipped_requirements)
    if len(data) > max_zipped_bytes:
        raise PackageError(
            f"the zip would be {byte_size(len(data))}, over Lambda's limit of {byte_size(max_zipped_bytes)} for a direct upload"
        )
    progress("writing the zip", len(data))
    _write_whole(output, data)
    return Package(output, len(data), unzipped, files, code_sha256(data), runtime, architecture, bytecode)


def _write_whole(output: Path, data: bytes) -> None:
    """Write `output` so that no reader ever sees half a zip."""
    try:
        atomic_write(output, data)
    except FileExistsError:  # mkdir met a file where the path needs a folder
        raise PackageError(f"cannot write the zip to {str(output)!r}: a part of it is a file, not a folder") from None
    except OSError as e:
        raise PackageError(f"cannot write the zip to {str(output)!r}: {e.strerror}") from None


@dataclass(frozen=True)
class _PipTarget:
    python_version: str
    platforms: tuple[str, ...]
    architecture: str

    def options(self) -> list[str]:
        platforms = [option for tag in self.platforms for option in ("--platform", tag)]
        return [
            *platforms,
            "--implementation",
            "cp",
            "--python-version",
            self.python_version,
            "--only-binary=:all:",
        ]

    def __str__(self) -> str:
        return f"Python {self.python_version} on Linux {self.architecture}"


def _installed_requirements(requirements: Path, wheel_cache: Path, target: _PipTarget, bytecode: bool, progress: Progress) -> bytes:
    """The requirements zipped as the function's zip holds them: installed by pip, compiled (with
    `bytecode`) and compressed, or, when the very same inputs were built before, as they were kept
    then in the wheel cache's installed/ folder (a rebuild then runs neither pip, nor compileall,
    nor the compression of thousands of files). A kept zip is taken only when its bytes are the
    ones written (their SHA-256 is kept beside them): the function's zip copies its entries whole."""
    try:
        kept_path = _kept_path(requirements, wheel_cache, target, bytecode)
        kept = kept_path.read_bytes()
        if _digest_path(kept_path).read_text() == hashlib.sha256(kept).hexdigest():
            progress("taking the installed requirements from the cache")
            return kept
    except OSError:
        pass  # none kept yet, or unreadable: install them again
    with tempfile.TemporaryDirectory(prefix="cruddur-lambda-") as staging:
        site = Path(staging)
        progress("installing the requirements (pip)")
        _install(requirements, site, wheel_cache, target)
        if bytecode:
            progress("compiling byte code")
            _compile(site)
        zipped = _zip(_entries(site))
    # Named by the inputs as they are now: a download just added the wheels the next build will see.
    _keep(requirements, wheel_cache, target, bytecode, zipped)
    return zipped


def _kept_path(requirements: Path, wheel_cache: Path, target: _PipTarget, bytecode: bool) -> Path:
    """Where the installed, compiled, compressed requirements are kept, named by everything they
    depend on: the requirements' text, the target, the wheels pip may choose from, the byte
    code's format, and how they are zipped (the entries' format, this Python's zipfile and zlib)."""
    wheels = sorted((wheel.name, wheel.stat().st_size) for wheel in wheel_cache.glob("*.whl")) if wheel_cache.is_dir() else []
    text = _read(requirements, "the requirements")
    zipping = (_ZIP_FORMAT, sys.version_info[:2], zlib.ZLIB_RUNTIME_VERSION)
    inputs = (text, target, wheels, bytecode and importlib.util.MAGIC_NUMBER, TASK_ROOT, zipping)
    return wheel_cache / "installed" / f"{hashlib.sha256(repr(inputs).encode()).hexdigest()[:32]}.zip"


def _digest_path(kept: Path) -> Path:
    return kept.with_name(kept.name + ".sha256")


def _keep(requirements: Path, wheel_cache: Path, target: _PipTarget, bytecode: bool, zipped: bytes) -> None:
    """Keep the zipped requirements for the next build, then their SHA-256 (a zip without its
    digest, or with another's, is never taken); a cache that cannot be written is only slower."""
    try:
        path = _kept_path(requirements, wheel_cache, target, bytecode)
        atomic_write(path, zipped)
        atomic_write(_digest_path(path), hashlib.sha256(zipped).hexdigest().encode())
    except OSError:
        pass


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise PackageError(f"cannot read {what} {str(path)!r}: {e.strerror}") from None


def _install(requirements: Path, site: Path, wheel_cache: Path, target: _PipTarget) -> None:
    """pip-install the requirements for the target platform into `site`, from the wheel cache;
    download into the cache first only when it lacks something."""
    install = ["install", "--target", str(site), "--no-compile", "--no-warn-script-location", "-r", str(requirements), *target.options()]
    offline = ["--no-index", "--find-links", str(wheel_cache)]
    if wheel_cache.is_dir() and any(wheel_cache.glob("*.whl")):
        if _pip(install + offline).returncode == 0:
            return
        # A failed install can leave a partial tree behind; start again from an empty one.
        _empty(site)
    wheel_cache.mkdir(parents=True, exist_ok=True)
    download = _pip(["download", "--dest", str(wheel_cache), "-r", str(requirements), *target.options()])
    if download.returncode != 0:
        raise PackageError(f"pip could not download the wheels for {target}: {_pip_reason(download)}")
    result = _pip(install + offline)
    if result.returncode != 0:
        raise PackageError(f"pip could not install the wheels for {target}: {_pip_reason(result)}")


def _compile(site: Path) -> None:
    """Byte code for every module, as the runtime would write it: in __pycache__, hash-based
    (checked against the source, so a function edited in the console still runs its edit), and
    naming its source under /var/task. A fresh interpreter compiles, as the runtime's would."""
    result = children.run(
        [sys.executable, "-E", "-s", "-m", "compileall", "-q", "-d", TASK_ROOT, "--invalidation-mode", "checked-hash", str(site)],
        name="compiling the zip's byte code",
        limit=COMPILE_LIMIT,
    )
    if result.returncode != 0:
        lines = [line.strip() for line in (result.stdout + result.stderr).splitlines() if line.strip()]
        raise PackageError(f"compiling the zip's byte code failed: {(lines or ['exit code ' + str(result.returncode)])[-1]}")


def _pip(args: list[str]) -> subprocess.CompletedProcess:
    return children.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args], name=f"pip {args[0]}", limit=PIP_LIMIT)


def _pip_reason(result: subprocess.CompletedProcess) -> str:
    """pip's own last ERROR line: the one that says what went wrong."""
    lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR:")]
    reason = (errors or lines or [f"exit code {result.returncode}"])[-1]
    return reason.removeprefix("ERROR:").strip()


def _empty(folder: Path) -> None:
    shutil.rmtree(folder)
    folder.mkdir()


def _entries(site: Path) -> dict[str, bytes]:
    """The installed files the runtime needs, by their path inside the zip."""
    entries = {}
    for path in site.rglob("*"):
        if path.is_dir() or path.is_symlink():
            continue
        name = PurePosixPath(path.relative_to(site).as_posix())
        if _needed(name):
            entries[str(name)] = path.read_bytes()
    return entries


def _needed(name: PurePosixPath) -> bool:
    if name.parts[0] in DROPPED_TOP_DIRS or name.name in DROPPED_NAMES:
        return False
    if name.suffix in DROPPED_SUFFIXES or ("__pycache__" in name.parts) != (name.suffix == ".pyc"):
        return False
    metadata_dir = next((part for part in name.parts if part.endswith(".dist-info")), None)
    if metadata_dir is not None:
        inner = name.parts[name.parts.index(metadata_dir) + 1 :]
        return inner == ("METADATA",) or inner[0] == "licenses" or inner[0].upper().startswith(LICENCE_NAMES)
    return True


# How _zip writes an entry; part of a kept zip's name, so that a change here builds them again.
_ZIP_FORMAT = "deflate-6, unix modes, epoch times"


def _zip(entries: dict[str, bytes], onto: bytes = b"") -> bytes:
    """The entries zipped in name order, after those of the zip `onto` (its entries are copied as
    they are, compressed: the requirements' thousands of files are compressed once, when installed)."""
    buffer = io.BytesIO(onto)
    with zipfile.ZipFile(buffer, "a" if onto else "w") as archive:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            info.create_system = 3  # Unix, so that the mode below is honoured
            info.external_attr = _mode(name) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            # zlib's default level: level 9 saves 0.3% of the size for three times the time.
            archive.writestr(info, entries[name], compresslevel=6)
    return buffer.getvalue()


def _mode(name: str) -> int:
    # Shared libraries keep the 755 their wheels give them; everything else is plain data.
    return EXECUTABLE_MODE if ".so" in PurePosixPath(name).suffixes else FILE_MODE
