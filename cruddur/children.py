"""Child processes (pg_dump, pg_restore, psql, pip) with a time limit, their stderr read while
they run: a child past its limit is killed and reported in one line, and a child that writes a
lot to stderr never blocks on a full pipe while we wait for it."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass

from .errors import ChildTimedOut, CruddurError
from .polling import Deadline


def run(
    argv: list[str],
    *,
    name: str,
    limit: float,
    env: dict[str, str] | None = None,
    while_running: Callable[[], None] | None = None,
    every: float = 0.2,
) -> subprocess.CompletedProcess[str]:
    """Run `argv` to its end with no input, its stdout and stderr read as they come (text);
    ChildTimedOut once it has run `limit` seconds (it is killed), CruddurError if it cannot start.
    `while_running` (progress, say) is called every `every` seconds until the child ends."""
    deadline = Deadline(limit)
    try:
        with subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace"
        ) as child:
            try:
                while True:
                    wait = deadline.left() if while_running is None else min(every, deadline.left())
                    try:
                        stdout, stderr = child.communicate(timeout=wait)
                        break
                    except subprocess.TimeoutExpired:
                        if deadline.passed():
                            raise ChildTimedOut(_too_long(name, limit)) from None
                        while_running()
            except BaseException:  # past the limit, or Ctrl-C: the child goes too
                child.kill()
                raise
    except OSError as e:
        raise CruddurError(f"cannot run {argv[0]}: {e.strerror}") from None
    return subprocess.CompletedProcess(argv, child.returncode, stdout, stderr)


@dataclass(frozen=True)
class Ended:
    returncode: int
    stderr: str


def pipe(
    producer: list[str],
    consumer: list[str],
    *,
    name: str,
    limit: float,
    consumer_env: dict[str, str] | None = None,
    keep: Callable[[bytes], bool] = lambda line: True,
) -> tuple[Ended, Ended]:
    """`producer | consumer`, passing on the producer's stdout lines that `keep`; how each ended.

    Both stderrs are read while the data flows, so neither child stalls on a full stderr pipe.
    Both are killed once `limit` seconds have passed: ChildTimedOut. A consumer that stops
    reading (it exited at an error) ends the producer: its stderr says why."""
    deadline_passed = threading.Event()
    try:
        with (
            subprocess.Popen(producer, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as source,
            subprocess.Popen(consumer, env=consumer_env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as sink,
        ):
            children = (source, sink)
            stderrs = [_drain(child.stderr) for child in children]

            def stop() -> None:
                deadline_passed.set()
                for child in children:
                    child.kill()

            timer = threading.Timer(limit, stop)
            timer.daemon = True
            timer.start()
            try:
                if not _copy(source.stdout, sink.stdin, keep):
                    source.kill()  # nobody reads what it writes any more
                for child in children:
                    child.wait()
            except BaseException:
                stop()
                raise
            finally:
                timer.cancel()
            texts = [reader() for reader in stderrs]
    except OSError as e:
        raise CruddurError(f"cannot run {producer[0]} or {consumer[0]}: {e.strerror}") from None
    if deadline_passed.is_set():
        raise ChildTimedOut(_too_long(name, limit))
    return Ended(source.returncode, texts[0]), Ended(sink.returncode, texts[1])


def _copy(lines: Iterable[bytes], into, keep: Callable[[bytes], bool]) -> bool:
    """Whether every kept line got through (False: the consumer stopped reading, and its exit
    code and stderr say why)."""
    try:
        for line in lines:
            if keep(line):
                into.write(line)
        into.close()
        return True
    except BrokenPipeError:
        with suppress(BrokenPipeError):
            into.close()  # what is still buffered cannot go anywhere either
        return False


def _drain(stream) -> Callable[[], str]:
    """Read `stream` to its end on a thread of its own; a function that waits for it and returns the text."""
    chunks: list[bytes] = []

    def read() -> None:
        try:
            chunks.extend(iter(lambda: stream.read(65536), b""))
        except (OSError, ValueError):
            pass  # closed under us while the children are being killed

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def text() -> str:
        reader.join()
        return b"".join(chunks).decode(errors="replace")

    return text


def _too_long(name: str, limit: float) -> str:
    return f"{name} was still running after {limit:g}s and was stopped"
