"""`inv lambda.invoke`: the handler run locally on a sample event, against the chosen database."""

from __future__ import annotations

import json

import pytest

from cruddur.lambda_build import local as lambda_local
from cruddur.postgres import urls
from tests.helpers import ROOT, Terminal, assert_one_line_error, free_port
from tests.lambda_support import sample_event, users


def test_invoke_inserts_the_sample_user_and_shows_the_row(run_task, schema_url):
    result = run_task("lambda.invoke", env={"CONNECTION_URL": schema_url})

    assert result.returncode == 0, result.stderr
    sample = json.loads(lambda_local.DEFAULT_EVENT.read_text())["request"]["userAttributes"]
    assert users(schema_url) == [("Londo Mollari", "londo@example.com", "londo", sample["sub"])]
    assert "confirm_sign_up.json on the dev database" in result.stdout
    assert f"sub={sample['sub']} outcome=inserted" in result.stdout
    assert "returned the event unchanged" in result.stdout
    for shown in ("display_name", "Londo Mollari", "handle", "londo", sample["sub"]):
        assert shown in result.stdout


def test_invoke_twice_keeps_one_row(run_task, schema_url):
    run_task("lambda.invoke", env={"CONNECTION_URL": schema_url})
    again = run_task("lambda.invoke", env={"CONNECTION_URL": schema_url})

    assert again.returncode == 0, again.stderr
    assert "outcome=already-present" in again.stdout
    assert len(users(schema_url)) == 1


def test_invoke_a_forgot_password_event_inserts_nothing(run_task, schema_url):
    path = lambda_local.EVENTS_DIR / "confirm_forgot_password.json"

    result = run_task("lambda.invoke", "--event", str(path), env={"CONNECTION_URL": schema_url})

    assert result.returncode == 0, result.stderr
    assert "outcome=skipped" in result.stdout
    assert "no users row for sub" in result.stdout
    assert users(schema_url) == []


def test_invoke_an_event_missing_an_attribute_is_one_line(run_task, schema_url, tmp_path):
    event = sample_event()
    del event["request"]["userAttributes"]["email"]
    path = tmp_path / "no_email.json"
    path.write_text(json.dumps(event))

    result = run_task("lambda.invoke", "--event", str(path), env={"CONNECTION_URL": schema_url})

    assert result.returncode == 1
    assert result.stderr.strip() == "error: no_email.json: request.userAttributes.email is missing or empty"
    assert users(schema_url) == []


def test_invoke_a_file_that_is_not_an_event(run_task, schema_url, tmp_path):
    missing = run_task("lambda.invoke", "--event", str(tmp_path / "nope.json"), env={"CONNECTION_URL": schema_url})
    (tmp_path / "bad.json").write_text("{not json")
    bad = run_task("lambda.invoke", "--event", str(tmp_path / "bad.json"), env={"CONNECTION_URL": schema_url})

    assert (missing.returncode, bad.returncode) == (1, 1)
    assert missing.stderr.strip() == f"error: no event file at {tmp_path / 'nope.json'}"
    assert bad.stderr.startswith(f"error: {tmp_path / 'bad.json'} is not JSON:")


def test_invoke_on_an_unreachable_database_is_one_line_without_the_password(inv):
    url = f"postgresql://postgres:hunter2-secret@127.0.0.1:{free_port()}/cruddur"

    result = inv("lambda.invoke", env={"CONNECTION_URL": url})

    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot connect to postgres@127.0.0.1:")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "hunter2-secret" not in result.stdout + result.stderr


def test_invoke_prod_needs_prod_connection_url(run_task):
    result = run_task("lambda.invoke", "--prod")

    assert result.returncode == 1
    assert result.stderr.startswith("error: PROD_CONNECTION_URL is not set")


def test_invoke_prod_uses_prod_connection_url(run_task, schema_url):
    result = run_task("lambda.invoke", "--prod", "--yes", env={"PROD_CONNECTION_URL": schema_url})

    assert result.returncode == 0, result.stderr
    assert "on the prod database" in result.stdout
    assert len(users(schema_url)) == 1


def test_invoke_prod_without_a_terminal_or_yes_refuses_and_saves_nothing(run_task, schema_url):
    result = run_task("lambda.invoke", "--prod", env={"PROD_CONNECTION_URL": schema_url})

    assert_one_line_error(result, "needs confirmation; run it on a terminal or pass --yes", prefix="refused: ")
    assert users(schema_url) == []


@pytest.mark.parametrize("typed, saved", [("wrong", False), ("DBNAME", True)])
def test_invoke_prod_asks_for_the_database_name_on_a_terminal(base_env, schema_url, typed, saved):
    name = urls.dbname(schema_url)
    terminal = Terminal(["lambda.invoke", "--prod"], {**base_env, "PROD_CONNECTION_URL": schema_url}, pipe_output=True)
    terminal.type(typed.replace("DBNAME", name) + "\n")
    code, _, err = terminal.finish()

    assert f"About to save the user of confirm_sign_up.json in database {name!r}" in err
    assert (code == 0) is saved, err
    assert len(users(schema_url)) == (1 if saved else 0)


def test_invoke_on_a_database_without_the_schema_says_what_to_do(run_task, database_url):
    result = run_task("lambda.invoke", env={"CONNECTION_URL": database_url})

    line = assert_one_line_error(result)
    assert line.endswith('UndefinedTable (SQLSTATE 42P01): relation "public.users" does not exist (load the schema first: inv db.setup)')


def test_loading_the_tasks_imports_neither_boto3_nor_psycopg_nor_rich(base_env):
    import subprocess
    import sys

    probe = "import sys, tasks.lambda_; print(sorted({'boto3', 'psycopg', 'rich', 'requests'} & set(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env=base_env,
        capture_output=True,
        text=True,
        check=True,
    )

    assert result.stdout.strip() == "[]"


def test_invoke_shows_values_that_look_like_markup_verbatim(run_task, schema_url, tmp_path):
    event = sample_event(name="Zathras [/] [bold]the[/bold] [red]one")
    path = tmp_path / "[red]odd [b]name.json"
    path.write_text(json.dumps(event))

    result = run_task("lambda.invoke", "--event", str(path), env={"CONNECTION_URL": schema_url})

    assert result.returncode == 0, result.stderr
    assert "Zathras [/] [bold]the[/bold] [red]one" in result.stdout
    assert "with [red]odd [b]name.json on the dev database" in result.stdout
    assert users(schema_url)[0][0] == "Zathras [/] [bold]the[/bold] [red]one"


def test_invoke_shows_control_characters_in_the_row_escaped(run_task, schema_url, tmp_path):
    hostile = "Zathras \x1b]0;pwned\x07\x1b[2J"
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps(sample_event(name=hostile)))

    result = run_task("lambda.invoke", "--event", str(path), env={"CONNECTION_URL": schema_url})

    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert "Zathras \\x1b]0;pwned\\x07\\x1b[2J" in result.stdout
    assert users(schema_url)[0][0] == hostile


@pytest.mark.parametrize(
    "request_value",
    [None, {}, {"userAttributes": None}, {"userAttributes": ["sub"]}, "user"],
    ids=["null request", "no userAttributes", "null userAttributes", "userAttributes a list", "request a string"],
)
def test_invoke_an_event_without_a_user_attributes_object_is_one_line(run_task, schema_url, tmp_path, request_value):
    event = sample_event()
    event["request"] = request_value
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(event))

    result = run_task("lambda.invoke", "--event", str(path), env={"CONNECTION_URL": schema_url})

    line = assert_one_line_error(result)
    assert line == f"error: {path}: request.userAttributes is missing or not a JSON object"
    assert users(schema_url) == []


def test_invoke_claims_the_seeded_row_of_its_handle(run_task, schema_url):
    seeded = run_task("db.seed", env={"CONNECTION_URL": schema_url})
    assert seeded.returncode == 0, seeded.stderr
    path = lambda_local.EVENTS_DIR / "confirm_sign_up_seeded_handle.json"
    sub = json.loads(path.read_text())["request"]["userAttributes"]["sub"]

    result = run_task("lambda.invoke", "--event", str(path), env={"CONNECTION_URL": schema_url})

    assert result.returncode == 0, result.stderr
    assert f"sub={sub} outcome=claimed" in result.stdout
    assert ("Andrew Brown", "andrew@exampro.co", "andrewbrown", sub) in users(schema_url)
    assert len(users(schema_url)) == 2  # the seed's two users, one of them now real


def test_invoke_a_handle_another_user_owns_is_one_line_and_changes_nothing(run_task, schema_url):
    run_task("lambda.invoke", env={"CONNECTION_URL": schema_url})
    before = users(schema_url)
    path = lambda_local.EVENTS_DIR / "confirm_sign_up_handle_taken.json"
    sub = json.loads(path.read_text())["request"]["userAttributes"]["sub"]

    result = run_task("lambda.invoke", "--event", str(path), env={"CONNECTION_URL": schema_url})

    line = assert_one_line_error(result)
    assert line == f"error: user {sub} not saved: another user already has the handle"
    assert users(schema_url) == before


def test_invoke_given_a_directory_is_one_line(run_task, schema_url, tmp_path):
    result = run_task("lambda.invoke", "--event", str(tmp_path), env={"CONNECTION_URL": schema_url})

    assert assert_one_line_error(result) == f"error: {tmp_path} is a directory, not an event file"


@pytest.mark.parametrize("depth", [2_000, 200_000])
def test_invoke_deeply_nested_json_is_one_line(run_task, schema_url, tmp_path, depth):
    path = tmp_path / "deep.json"
    path.write_text('{"request": ' + "[" * depth + "]" * depth + "}")

    result = run_task("lambda.invoke", "--event", str(path), env={"CONNECTION_URL": schema_url})

    assert assert_one_line_error(result) == f"error: {path} nests too deeply to be a Cognito event"
    assert users(schema_url) == []


@pytest.mark.parametrize("attribute", ["name", "sub"])
def test_invoke_an_event_with_a_lone_surrogate_is_one_line_and_saves_nothing(run_task, schema_url, tmp_path, attribute):
    event = sample_event()
    event["request"]["userAttributes"][attribute] = "Lo\udc80ne"
    path = tmp_path / "surrogate.json"
    path.write_text(json.dumps(event))  # JSON's own escape: "\udc80", as a bad byte becomes

    result = run_task("lambda.invoke", "--event", str(path), env={"CONNECTION_URL": schema_url})

    assert result.returncode == 1
    assert (
        result.stderr.strip() == f"error: surrogate.json: request.userAttributes.{attribute} is not valid text (it holds a lone surrogate)"
    )
    assert users(schema_url) == []


@pytest.mark.parametrize("content", ["[]", '"ConfirmSignUp"', "null", "3", "[{}]"])
def test_invoke_an_event_that_is_not_an_object_is_one_line(run_task, schema_url, tmp_path, content):
    path = tmp_path / "not_an_object.json"
    path.write_text(content)

    result = run_task("lambda.invoke", "--event", str(path), env={"CONNECTION_URL": schema_url})

    assert result.returncode == 1
    assert result.stderr.strip() == f"error: {path} holds no Cognito event (expected a JSON object)"
    assert users(schema_url) == []
