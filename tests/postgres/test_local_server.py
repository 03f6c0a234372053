"""The embedded server itself, with real processes: TCP with a password, stale lock files,
a killed postmaster, and a system without /proc."""

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from cruddur.errors import DatabaseError
from cruddur.postgres import local_server
from tests.helpers import free_port, taken_port, temporary_pgdata


@pytest.fixture
def pgdata():
    """A data folder of its own, its server stopped afterwards."""
    with temporary_pgdata("cruddur-ls-") as folder:
        yield folder


def server_account():
    return local_server.SERVER_ACCOUNT if os.geteuid() == 0 else None


def wait_until_gone(pid: int) -> None:
    """Until the process has exited (a zombie counts: it runs nothing any more)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if not Path(f"/proc/{pid}/cmdline").read_bytes():
                return
        except OSError:
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} is still running")


def test_tcp_takes_the_password_file_and_refuses_another(pgdata):
    port = free_port()
    socket_url, started = local_server.ensure_running(pgdata, port)
    assert started
    password_file = local_server.password_file(pgdata)
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    password = password_file.read_text().strip()
    assert len(password) >= 24
    with psycopg.connect(local_server.tcp_url(port, "postgres", password)) as conn:
        assert conn.execute("SELECT inet_server_port()").fetchone()[0] == port
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(local_server.tcp_url(port, "postgres", password + "x"))
    with pytest.raises(psycopg.OperationalError, match="no password supplied"):
        psycopg.connect(local_server.tcp_url(port, "postgres"))
    # the socket keeps trust, and a restart keeps the same password
    psycopg.connect(socket_url).close()
    assert local_server.stop(pgdata)
    assert local_server.ensure_running(pgdata, port)[1]
    assert password_file.read_text().strip() == password
    psycopg.connect(local_server.tcp_url(port, "postgres", password)).close()


def test_a_taken_port_is_one_clear_line(pgdata):
    with taken_port() as port:
        with pytest.raises(DatabaseError) as raised:
            local_server.start(pgdata, port)
    assert str(raised.value) == (
        f"port {port} on 127.0.0.1 is taken (another PostgreSQL?); choose another one: export CRUDDUR_PGPORT={port + 1}"
    )
    assert local_server.running_url(pgdata) is None


@pytest.mark.parametrize(
    "impostor",
    [
        ["sleep", "60"],
        # a process that says "postgres" in its command line, even as its name
        ["bash", "-c", "exec -a postgres sleep 60"],
        ["sh", "-c", "sleep 60", "psql", "host=/tmp user=postgres dbname=postgres"],
    ],
    ids=["unrelated", "named-postgres", "psql-user-postgres"],
)
def test_a_stale_lock_file_naming_a_live_process_is_not_believed(pgdata, impostor):
    port = free_port()
    local_server.start(pgdata, port)
    lock_file = pgdata / "postmaster.pid"
    lines = lock_file.read_text().split("\n")
    assert local_server.stop(pgdata)
    # As after a reboot: the server is gone, its lock file stayed, and the pid it names now
    # belongs to something else, run by the server's own account (as a non-root developer's is).
    with subprocess.Popen(impostor, user=server_account()) as other:
        time.sleep(0.1)  # let exec -a take effect
        lock_file.write_text("\n".join([str(other.pid), *lines[1:]]))
        assert local_server.running_url(pgdata) is None
        url, started = local_server.ensure_running(pgdata, port)
        other.kill()
    assert started
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_right_after_the_postmaster_is_killed_the_next_start_waits_for_it(pgdata):
    port = free_port()
    url = local_server.start(pgdata, port)
    holder = psycopg.connect(url)  # a backend that outlives the postmaster for a moment
    pid = local_server.lock_file(pgdata).pid
    os.kill(pid, signal.SIGKILL)
    wait_until_gone(pid)
    assert local_server.running_url(pgdata) is None
    url, started = local_server.ensure_running(pgdata, port)
    assert started
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    holder.close()


def test_without_proc_the_server_itself_is_asked(pgdata, monkeypatch, tmp_path):
    port = free_port()
    url = local_server.start(pgdata, port)
    monkeypatch.setattr(local_server, "PROC", tmp_path)  # as on macOS: no /proc at all
    assert local_server.running_url(pgdata) == url
    assert local_server.ensure_running(pgdata, port) == (url, False)
    assert local_server.stop(pgdata)
    assert not (pgdata / "postmaster.pid").exists()
    assert local_server.running_url(pgdata) is None
    assert local_server.stop(pgdata) is False


def test_without_proc_a_lock_file_nobody_answers_for_is_not_running(pgdata, monkeypatch, tmp_path):
    port = free_port()
    local_server.start(pgdata, port)
    lock_file = pgdata / "postmaster.pid"
    lines = lock_file.read_text().split("\n")
    assert local_server.stop(pgdata)
    monkeypatch.setattr(local_server, "PROC", tmp_path)
    with subprocess.Popen(["sleep", "60"]) as other:
        lock_file.write_text("\n".join([str(other.pid), *lines[1:]]))
        assert local_server.running_url(pgdata) is None
        other.kill()


@pytest.mark.parametrize("long_path", [False, True], ids=["socket in the data folder", "data path too long for a socket"])
def test_the_socket_and_its_folder_are_the_server_accounts_alone(long_path):
    """The socket trusts whoever reaches it: no other local user may."""
    with temporary_pgdata("cruddur-ls-") as default:
        pgdata = default.parent / ("d" * 60) / ("e" * 60) / "pgdata" if long_path else default
        try:
            local_server.start(pgdata, free_port())
            socket_dir = Path(local_server.lock_file(pgdata).socket_dir)
            assert (socket_dir != pgdata) is long_path
            socket = next(socket_dir.glob(".s.PGSQL.*[0-9]"))

            assert stat.S_IMODE(socket_dir.stat().st_mode) == 0o700
            assert stat.S_IMODE(socket.stat().st_mode) & 0o077 == 0
            account = server_account()
            if account:
                import pwd

                assert socket_dir.stat().st_uid == pwd.getpwnam(account).pw_uid
        finally:
            local_server.stop(pgdata)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root prepares a server account")
def test_first_starts_at_once_agree_on_one_server_account(tmp_path):
    """Four processes preparing a missing account at once (parallel first starts): each data
    folder ends up owned by the one account that exists afterwards."""
    import pwd
    import secrets

    account = "cruddur_race_" + secrets.token_hex(3)
    folders = [tmp_path / f"data{i}" for i in range(4)]
    script = "import sys; from pathlib import Path; from cruddur.postgres import local_server\n" + (
        "p = Path(sys.argv[2]); p.mkdir(); local_server.prepare_account(sys.argv[1], p)"
    )
    try:
        runs = [subprocess.Popen([sys.executable, "-c", script, account, str(folder)]) for folder in folders]
        assert [run.wait(timeout=60) for run in runs] == [0, 0, 0, 0]
        uid = pwd.getpwnam(account).pw_uid
        assert [folder.stat().st_uid for folder in folders] == [uid] * 4
    finally:
        subprocess.run(["userdel", account], capture_output=True)
