"""Files: written whole (beside their place under a partial name, then renamed in), and shown in
messages relative to the checkout."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path


def partial_path(path: Path) -> Path:
    """Where `path` is written before it is renamed in: named for this process, so two writers
    at once never share one (nor touch another's)."""
    return path.with_name(f"{path.name}.{os.getpid()}.partial")


@contextmanager
def atomic_path(path: Path, mode: int = 0o666) -> Iterator[Path]:
    """A partial file beside `path`, created empty (its folders made as needed) with `mode`
    (before the umask; 0o600: the owner only), for the block (or a child process) to fill.

    When the block ends without an error it is renamed over `path`; whatever happens, no partial
    file is left. OSError (FileExistsError: a part of the path is a file) as the system raised it."""
    partial = partial_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode))
    try:
        yield partial
        partial.replace(path)
    finally:
        with suppress(OSError):
            partial.unlink(missing_ok=True)


def atomic_write(path: Path, data: bytes, mode: int = 0o666) -> None:
    """Write `data` to `path` so that no reader ever sees half of it (see atomic_path)."""
    with atomic_path(path, mode) as partial:
        partial.write_bytes(data)


def shown_path(path: Path, root: Path | None) -> Path:
    """`path` as a message shows it: relative to `root` when inside it (sql/migrations/...,
    dist/...), else whole."""
    return path.relative_to(root) if root is not None and path.is_relative_to(root) else path
