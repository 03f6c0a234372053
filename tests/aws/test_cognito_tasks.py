"""`inv cognito.users` and `inv cognito.sync` as a user runs them: a moto server on 127.0.0.1 with
more than one page of users, and a real PostgreSQL."""

from __future__ import annotations

import json

import pytest

from tests.aws.test_cognito import add_cognito_user, add_row, ids_by_handle
from tests.helpers import assert_one_line_error


def table_row(output: str, *cells: str) -> bool:
    """Some line of a rich table holds these cells, in this order."""
    return any(
        [cell.strip() for cell in line.split("│")][1 : len(cells) + 1][:-1] == list(cells[:-1])
        and line.split("│")[len(cells)].strip().startswith(cells[-1])
        for line in output.splitlines()
    )


def test_users_json_lists_every_page(run_task, pool):
    idp, pool_id, env = pool
    subs = {add_cognito_user(idp, pool_id, f"user{i:02}", f"handle{i:02}") for i in range(61)}
    add_cognito_user(idp, pool_id, "nameless")

    result = run_task("cognito.users", "--json", env=env)

    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert len(listed) == 62 and subs < {user["sub"] for user in listed}
    nameless = next(user for user in listed if user["username"] == "nameless")
    assert nameless["preferred_username"] is None and nameless["email"] == "nameless@example.com"
    assert set(nameless) == {"username", "sub", "preferred_username", "email", "status", "created"}


def test_users_table_shows_the_users(run_task, pool):
    idp, pool_id, env = pool
    sub = add_cognito_user(idp, pool_id, "andrew", "andrewbrown", "andrew@exampro.co")

    result = run_task("cognito.users", env=env)

    assert result.returncode == 0, result.stderr
    assert f"{pool_id}: 1 users" in result.stdout
    for shown in ("andrew", sub, "andrewbrown", "andrew@exampro.co", "FORCE_CHANGE_PASSWORD"):
        assert shown in result.stdout


def test_users_without_the_pool_variable_is_one_line(inv):
    result = inv("cognito.users")

    assert_one_line_error(result, "error: AWS_COGNITO_USER_POOL_ID is not set: export AWS_COGNITO_USER_POOL_ID=")


def test_sync_prints_every_category_then_has_nothing_to_do(run_task, pool, schema_url):
    idp, pool_id, env = pool
    env = {**env, "CONNECTION_URL": schema_url}
    sub = add_cognito_user(idp, pool_id, "andrew", "andrewbrown")
    add_row(schema_url, "andrewbrown", "MOCK-andrewbrown")
    add_row(schema_url, "bayko", "MOCK-bayko")
    add_cognito_user(idp, pool_id, "anonymous")

    first = run_task("cognito.sync", env=env)
    second = run_task("cognito.sync", env=env)

    assert first.returncode == 0, first.stderr
    assert table_row(first.stdout, "updated", "andrewbrown", f"MOCK-andrewbrown -> {sub}")
    assert table_row(first.stdout, "row, no Cognito user", "bayko", "MOCK-bayko (placeholder: not signed up yet)")
    assert table_row(first.stdout, "no preferred_username", "-", "anonymous (")
    for count, label in [
        (1, "updated"),
        (0, "already right"),
        (0, "Cognito users with no row"),
        (1, "rows with no Cognito user"),
        (1, "without preferred_username (skipped)"),
        (0, "sub used by another row (not applied)"),
    ]:
        assert f"{count:>5}  {label}\n" in first.stdout
    assert "Traceback" not in first.stderr
    assert second.returncode == 0, second.stderr
    assert "    1  already right" in second.stdout and second.stdout.rstrip().endswith("nothing to do")
    assert ids_by_handle(schema_url) == {"andrewbrown": sub, "bayko": "MOCK-bayko"}


def test_sync_dry_run_changes_nothing(run_task, pool, schema_url):
    idp, pool_id, env = pool
    add_cognito_user(idp, pool_id, "andrew", "andrewbrown")
    add_row(schema_url, "andrewbrown", "MOCK-andrewbrown")

    result = run_task("cognito.sync", "--dry-run", "--json", env={**env, "CONNECTION_URL": schema_url})

    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["dry_run"] and [u["handle"] for u in document["updated"]] == ["andrewbrown"]
    assert ids_by_handle(schema_url) == {"andrewbrown": "MOCK-andrewbrown"}


def test_sync_prod_without_a_terminal_or_yes_is_refused_and_changes_nothing(run_task, pool, schema_url):
    idp, pool_id, env = pool
    add_cognito_user(idp, pool_id, "andrew", "andrewbrown")
    add_row(schema_url, "andrewbrown", "MOCK-andrewbrown")

    refused = run_task("cognito.sync", "--prod", env={**env, "PROD_CONNECTION_URL": schema_url})

    line = assert_one_line_error(refused, prefix="refused: set cognito_user_id from Cognito in database ")
    assert line.endswith("needs confirmation; run it on a terminal or pass --yes")
    assert ids_by_handle(schema_url) == {"andrewbrown": "MOCK-andrewbrown"}
    # The plan came before the question it is about.
    assert table_row(refused.stdout, "updated", "andrewbrown", "MOCK-andrewbrown -> ")
    assert refused.stdout.splitlines()[-1].startswith("will update 1 row(s) on the prod database ")

    confirmed = run_task("cognito.sync", "--prod", "--yes", "--no-backup", env={**env, "PROD_CONNECTION_URL": schema_url})

    assert confirmed.returncode == 0, confirmed.stderr
    assert not ids_by_handle(schema_url)["andrewbrown"].startswith("MOCK")
    assert confirmed.stdout.splitlines()[-1].startswith("updated 1 row(s) on the prod database ")


def test_sync_prod_json_keeps_stdout_one_document_and_shows_the_plan_on_stderr(inv, pool, schema_url):
    idp, pool_id, env = pool
    sub = add_cognito_user(idp, pool_id, "andrew", "andrewbrown")
    add_row(schema_url, "andrewbrown", "MOCK-andrewbrown")

    result = inv("cognito.sync", "--prod", "--yes", "--no-backup", "--json", env={**env, "PROD_CONNECTION_URL": schema_url})

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["updated"] == [{"handle": "andrewbrown", "old": "MOCK-andrewbrown", "new": sub}]
    assert "will update 1 row(s) on the prod database" in result.stderr


def test_sync_reports_a_handle_another_cognito_user_holds(run_task, pool, schema_url):
    idp, pool_id, env = pool
    add_row(schema_url, "andrewbrown", "an-earlier-real-sub")
    newcomer = add_cognito_user(idp, pool_id, "impostor", "andrewbrown")

    result = run_task("cognito.sync", env={**env, "CONNECTION_URL": schema_url})

    assert result.returncode == 0, result.stderr
    assert table_row(result.stdout, "handle held by another Cognito user", "andrewbrown", f"an-earlier-real-sub holds it, not {newcomer}")
    assert "    1  handle held by another Cognito user (not applied)\n" in result.stdout
    assert result.stdout.rstrip().endswith("nothing to do")
    assert ids_by_handle(schema_url) == {"andrewbrown": "an-earlier-real-sub"}


# Text other people wrote: a terminal must show it, not act on it (an OSC sequence sets the title).
HOSTILE = "evil\x1b]0;pwned\x07\x1b[2J"
SHOWN = "evil\\x1b]0;pwned\\x07\\x1b[2J"


def test_users_shows_control_characters_escaped_and_json_keeps_them_exact(run_task, pool):
    idp, pool_id, env = pool
    add_cognito_user(idp, pool_id, "hostile", HOSTILE, email=f"{HOSTILE}@example.com")

    table = run_task("cognito.users", env={**env, "COLUMNS": "300"})
    document = run_task("cognito.users", "--json", env=env)

    assert table.returncode == 0, table.stderr
    assert "\x1b" not in table.stdout and "\x07" not in table.stdout
    assert SHOWN in table.stdout and f"{SHOWN}@example.com" in table.stdout
    (user,) = json.loads(document.stdout)
    assert (user["preferred_username"], user["email"]) == (HOSTILE, f"{HOSTILE}@example.com")


def test_sync_shows_control_characters_escaped(run_task, pool, schema_url):
    idp, pool_id, env = pool
    add_cognito_user(idp, pool_id, "hostile", HOSTILE)
    add_row(schema_url, HOSTILE, "MOCK-hostile")

    result = run_task("cognito.sync", "--dry-run", env={**env, "CONNECTION_URL": schema_url, "COLUMNS": "300"})

    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert table_row(result.stdout, "updated", SHOWN, "MOCK-hostile -> ")


def test_sync_on_a_database_without_the_schema_is_one_line(run_task, pool, database_url):
    _, _, env = pool

    result = run_task("cognito.sync", env={**env, "CONNECTION_URL": database_url})

    assert_one_line_error(result, "error: public.users does not exist (load the schema first: inv db.setup)")


@pytest.mark.parametrize("columns", [80, 120, 200])
def test_users_keep_the_sub_whole_at_any_width(run_task, pool, columns):
    idp, pool_id, env = pool
    sub = add_cognito_user(idp, pool_id, "andrew-with-a-longer-user-name", "andrewbrown", "andrew.brown@exampro.example.co")
    result = run_task("cognito.users", env={**env, "COLUMNS": str(columns)})
    assert result.returncode == 0, result.stderr
    assert all(len(line) <= columns for line in result.stdout.splitlines())
    assert sub in result.stdout
    for shown in ("andrew-with-a-longer-user-name", "andrewbrown", "andrew.brown@exampro.example.co"):
        assert shown in result.stdout
    if columns == 80:  # too narrow for the table: the sub on a line of its own
        assert f"  sub                 {sub}" in result.stdout.splitlines()
