"""`inv db.create-activity` and `inv db.activities` as a user runs them, on a real database."""

import json
from datetime import UTC, datetime

import psycopg
import pytest

from tests.helpers import assert_one_line_error, free_port


def messages(url):
    with psycopg.connect(url) as conn:
        return [row[0] for row in conn.execute("SELECT message FROM activities ORDER BY created_at")]


def test_create_activity_json(run_task, seeded_url):
    result = run_task(
        "db.create-activity",
        "--handle",
        "bayko",
        "--message",
        "from the CLI",
        "--ttl",
        "3-hours",
        "--json",
        env={"CONNECTION_URL": seeded_url},
    )
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["errors"] is None
    assert set(printed["data"]) == {"uuid", "display_name", "handle", "message", "created_at", "expires_at"}
    assert (printed["data"]["handle"], printed["data"]["message"]) == ("bayko", "from the CLI")
    assert messages(seeded_url) == ["This was imported as seed data!", "from the CLI"]


def test_create_activity_panel(run_task, seeded_url):
    result = run_task("db.create-activity", "--handle", "andrewbrown", "--message", "panel please", env={"CONNECTION_URL": seeded_url})
    assert result.returncode == 0, result.stderr
    assert "activity created" in result.stdout
    assert "panel please" in result.stdout
    assert "Andrew Brown (@andrewbrown)" in result.stdout
    assert "panel please" in messages(seeded_url)


def test_create_activity_refusal_exits_1_and_stores_nothing(run_task, seeded_url):
    result = run_task(
        "db.create-activity",
        "--handle",
        "",
        "--message",
        "x" * 281,
        "--ttl",
        "2-weeks",
        env={"CONNECTION_URL": seeded_url},
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip() == (
        "error: activity not created: "
        "ttl_blank (--ttl must be one of 30-days, 7-days, 3-days, 1-day, 12-hours, 3-hours, 1-hour; not '2-weeks'); "
        "user_handle_blank (--handle is blank); "
        "message_exceed_max_chars (--message is longer than 280 characters)"
    )
    assert messages(seeded_url) == ["This was imported as seed data!"]


def test_create_activity_unknown_handle_json(run_task, seeded_url):
    result = run_task("db.create-activity", "--handle", "ghost", "--message", "boo", "--json", env={"CONNECTION_URL": seeded_url})
    assert result.returncode == 1
    assert json.loads(result.stdout) == {"errors": ["user_not_found"], "data": {"handle": "ghost", "message": "boo"}}
    assert "user_not_found (no user has the handle 'ghost')" in result.stderr
    assert messages(seeded_url) == ["This was imported as seed data!"]


def test_activities_json_newest_first(run_task, seeded_url):
    for message in ("second", "third"):
        created = run_task("db.create-activity", "--handle", "bayko", "--message", message, env={"CONNECTION_URL": seeded_url})
        assert created.returncode == 0, created.stderr
    result = run_task("db.activities", "--json", env={"CONNECTION_URL": seeded_url})
    assert result.returncode == 0, result.stderr
    feed = json.loads(result.stdout)
    assert [a["message"] for a in feed] == ["third", "second", "This was imported as seed data!"]
    assert set(feed[0]) == {
        "uuid",
        "display_name",
        "handle",
        "message",
        "replies_count",
        "reposts_count",
        "likes_count",
        "reply_to_activity_uuid",
        "expires_at",
        "created_at",
    }
    for stamp in (feed[0]["created_at"], feed[0]["expires_at"]):
        assert "T" in stamp and datetime.fromisoformat(stamp).tzinfo is not None  # ISO 8601 with offset


def test_activities_table_and_limit(run_task, seeded_url):
    result = run_task("db.activities", env={"CONNECTION_URL": seeded_url})
    assert result.returncode == 0, result.stderr
    assert "@andrewbrown" in result.stdout
    assert "This was imported" in result.stdout  # the table may wrap the rest
    assert "showing 1 of 1 activities" in result.stdout
    limited = run_task("db.activities", "--json", "--limit", "0", env={"CONNECTION_URL": seeded_url})
    assert len(json.loads(limited.stdout)) == 1  # 0: all of them, as in the library


@pytest.mark.parametrize(
    "value, message",
    [
        ("abc", "error: --limit takes a whole number, not 'abc'"),
        ("1.5", "error: --limit takes a whole number, not '1.5'"),
        ("-1", "error: --limit must be a number of 0 or more, not '-1'"),
    ],
)
def test_activities_bad_limit_is_one_line_before_connecting(run_task, value, message):
    # The URL points at a closed port: the flag is refused before any connection is tried.
    result = run_task("db.activities", "--limit", value, env={"CONNECTION_URL": f"postgresql://127.0.0.1:{free_port()}/x"})
    assert assert_one_line_error(result) == message
    assert result.stdout == ""


def test_prod_without_its_url_names_the_variable(run_task):
    result = run_task("db.activities", "--prod")
    assert result.returncode == 1
    assert result.stderr.startswith("error: PROD_CONNECTION_URL is not set: export PROD_CONNECTION_URL=")


def test_unreachable_database_is_one_line_without_the_password(run_task):
    port = free_port()
    result = run_task("db.activities", env={"CONNECTION_URL": f"postgresql://postgres:s3cr3t-pw@127.0.0.1:{port}/cruddur"})
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: could not connect to postgres@127.0.0.1:{port}/cruddur within 5s:")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "s3cr3t-pw" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_messages_are_shown_verbatim_not_as_markup(run_task, seeded_url):
    message = "[bold]not bold[/bold] and a stray [/]"
    created = run_task("db.create-activity", "--handle", "bayko", "--message", message, env={"CONNECTION_URL": seeded_url})
    assert created.returncode == 0, created.stderr
    assert message in created.stdout
    feed = run_task("db.activities", env={"CONNECTION_URL": seeded_url, "COLUMNS": "200"})
    assert feed.returncode == 0, feed.stderr
    assert message in feed.stdout


def test_activities_say_how_many_they_show_and_print_full_times(run_task, seeded_url):
    for n in range(3):
        run_task("db.create-activity", "--handle", "bayko", "--message", f"m{n}", env={"CONNECTION_URL": seeded_url})
    result = run_task("db.activities", "--limit", "2", env={"CONNECTION_URL": seeded_url, "COLUMNS": "120"})
    assert result.returncode == 0, result.stderr
    assert "showing 2 of 4 activities" in result.stdout
    with psycopg.connect(seeded_url) as conn:
        newest = conn.execute("SELECT created_at FROM activities ORDER BY created_at DESC LIMIT 1").fetchone()[0]
    assert f"{newest.astimezone(UTC):%Y-%m-%d %H:%M} UTC" in result.stdout  # date, year, zone
    assert all(line == line.rstrip() for line in result.stdout.splitlines())


def test_dash_h_is_help_for_every_task(inv):
    import copy

    from tasks import ns

    for prefix, collection in ns.collections.items():
        for name, task in collection.tasks.items():
            probe = copy.copy(task)
            probe.help = dict(task.help)  # get_arguments() consumes the help it reads
            short_flags = {flag for argument in probe.get_arguments() for flag in argument.names if len(flag) == 1}
            assert "h" not in short_flags, f"{prefix}.{name}"
    result = inv("db.create-activity", "-h")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: inv[oke] [--core-opts] db.create-activity")
    assert "-a STRING, --handle=STRING" in result.stdout


def test_a_message_that_is_not_utf8_is_one_line(inv, seeded_url):
    result = inv("db.create-activity", "--handle", "bayko", "--message", b"caf\xff", env={"CONNECTION_URL": seeded_url})
    line = assert_one_line_error(result)
    assert line == "error: activity not created: message_invalid_characters (--message holds a NUL byte or bytes that are not UTF-8)"
    assert messages(seeded_url) == ["This was imported as seed data!"]


def test_control_characters_in_messages_are_shown_escaped(run_task, seeded_url):
    message = "title\x1b]0;pwned\x07 and \x1b[2Jclear"
    created = run_task("db.create-activity", "--handle", "bayko", "--message", message, env={"CONNECTION_URL": seeded_url})
    assert created.returncode == 0, created.stderr
    feed = run_task("db.activities", env={"CONNECTION_URL": seeded_url, "COLUMNS": "200"})
    as_json = run_task("db.activities", "--json", env={"CONNECTION_URL": seeded_url})
    for shown in (created.stdout, feed.stdout):
        assert "\x1b" not in shown and "\x07" not in shown
        assert "title\\x1b]0;pwned\\x07 and \\x1b[2Jclear" in shown
    assert json.loads(as_json.stdout)[0]["message"] == message


@pytest.mark.timeout(60)  # a hang guard: without a lock_timeout the task would wait for the holder
@pytest.mark.parametrize(
    "args",
    [("db.activities",), ("db.activities", "--json"), ("db.create-activity", "--handle", "bayko", "--message", "blocked")],
    ids=" ".join,
)
def test_a_locked_activities_table_is_one_line_naming_the_bound(run_task, seeded_url, args):
    holder = psycopg.connect(seeded_url)
    holder.execute("LOCK TABLE activities IN ACCESS EXCLUSIVE MODE")
    try:
        line = assert_one_line_error(run_task(*args, env={"CONNECTION_URL": seeded_url}))
    finally:
        holder.close()
    assert line == (
        "error: query gave up after waiting 5s for a lock another session holds: canceling statement due to lock timeout"
        " (SQLSTATE 55P03) (inv db.sessions shows who)"
    )
    assert messages(seeded_url) == ["This was imported as seed data!"]


LONG_MESSAGE = "Shipping the new feed today: every activity now shows its likes, and the expiry is kept for a week"


@pytest.mark.parametrize("columns", [80, 120, 200])
def test_messages_wrap_at_word_boundaries_within_the_width(run_task, seeded_url, columns):
    created = run_task("db.create-activity", "--handle", "bayko", "--message", LONG_MESSAGE, env={"CONNECTION_URL": seeded_url})
    assert created.returncode == 0, created.stderr
    result = run_task("db.activities", env={"CONNECTION_URL": seeded_url, "COLUMNS": str(columns)})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert all(len(line) <= columns for line in lines)
    header = next(line for line in lines if line.startswith("created"))
    start = header.index("message")
    pieces = [line[start:].split("  ")[0].strip() for line in lines[lines.index(header) + 2 :] if line[start:].strip()]
    shown = pieces[: next(i for i, piece in enumerate(pieces) if piece.endswith("week")) + 1]
    assert " ".join(shown) == LONG_MESSAGE  # whole, each line ending at a word's end
    assert all(len(piece) >= 20 for piece in shown[:-1])  # never squeezed to a few letters
    assert ("expires" in header) is (columns >= 120)
