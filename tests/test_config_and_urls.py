"""Settings from the environment, and URLs shown without their passwords."""

from dataclasses import fields

import pytest

from cruddur.config import Settings
from cruddur.errors import ConfigError, MissingSetting
from cruddur.postgres import urls


def test_settings_read_the_scripts_variable_names(tmp_path):
    settings = Settings.from_env(
        {
            "CONNECTION_URL": "postgresql://postgres:password@localhost:5432/cruddur",
            "PROD_CONNECTION_URL": " ",
            "IP_LOOKUP_URLS": "http://127.0.0.1:1/ip, ,http://127.0.0.1:2/ip",
            "CRUDDUR_PGDATA": str(tmp_path / "data"),
        }
    )
    assert settings.connection_url == "postgresql://postgres:password@localhost:5432/cruddur"
    assert settings.prod_connection_url is None  # blank is unset
    assert settings.ip_lookup_urls == ("http://127.0.0.1:1/ip", "http://127.0.0.1:2/ip")
    assert settings.pgdata == tmp_path / "data"
    assert "password" not in repr(settings)


def test_a_missing_setting_names_the_variable():
    with pytest.raises(MissingSetting) as missing:
        Settings.from_env({}).require("db_sg_rule_id")
    assert str(missing.value) == ("DB_SG_RULE_ID is not set: export DB_SG_RULE_ID=sgr-0123456789abcdef0")


@pytest.mark.parametrize(
    "url, masked, described",
    [
        (
            "postgresql://postgres:pa:ss%40word@db.example.com:5432/cruddur",
            "postgresql://postgres:****@db.example.com:5432/cruddur",
            "postgres@db.example.com:5432/cruddur",
        ),
        ("postgresql://cruddur@db/cruddur?sslmode=require", "postgresql://cruddur@db/cruddur?sslmode=require", "cruddur@db/cruddur"),
        ("postgresql://postgres:@/cruddur?host=/tmp/pg", "postgresql://postgres@/cruddur?host=/tmp/pg", "postgres@/tmp/pg/cruddur"),
        (
            "host=db.example.com password=secret dbname=cruddur",
            "password=**** dbname=cruddur host=db.example.com",
            "db.example.com/cruddur",
        ),
        # Rewritten from what libpq read: the password, wherever it was, shows as **** in the user-info.
        ("postgresql://u@db/cruddur?password=secret&sslmode=require", "postgresql://u:****@db/cruddur?sslmode=require", "u@db/cruddur"),
    ],
)
def test_mask_and_describe(url, masked, described):
    assert urls.mask(url) == masked
    assert urls.describe(url) == described


def test_with_dbname_keeps_everything_else():
    # the old sed-based scripts broke when the password or host contained the database name
    url = "postgresql://cruddur:cruddur@cruddur.example.com:5432/cruddur?sslmode=require"
    assert urls.with_dbname(url, "postgres") == "postgresql://cruddur:cruddur@cruddur.example.com:5432/postgres?sslmode=require"
    assert urls.dbname("postgresql://u@h") == "cruddur"
    # ?dbname= would override the path: it must not survive a change of database
    moved = urls.with_dbname("postgresql://u@h/?dbname=app&host=/tmp/pg", "postgres")
    assert urls.parse(moved)["dbname"] == "postgres" and urls.parse(moved)["host"] == "/tmp/pg"


@pytest.mark.parametrize(
    "bad",
    [
        "postgresql://u:hun/ter2@h/db",
        "postgresql://u:%ffhunter2@h/db",
        'postgresql://u:q"%zzhunter2@h/db',
        "postgres//u:hunter2@h/db",
        "postgresql://u:hunter2@x@h/db",
        "postgresql://u:hunter2@[bad/db",
        "postgresql://u:hunter2@h:port/db",
        "postgresql://u:hunter2@h/db?nope=1",
    ],
)
def test_malformed_urls_never_echo_their_secrets(bad):
    with pytest.raises(ConfigError) as failure:
        urls.parse(bad, "CONNECTION_URL")
    assert str(failure.value).startswith("CONNECTION_URL is malformed: ")
    assert "hunter2" not in str(failure.value)


SECRET_SETTINGS = [f.name for f in fields(Settings) if not f.repr and f.metadata.get("env")]


@pytest.mark.parametrize("attribute", SECRET_SETTINGS)
@pytest.mark.parametrize("workspace", [{"CODESPACES": "true"}, {"PATH": "GITPOD"}, {}], ids=["codespaces", "gitpod", "shell"])
def test_a_missing_secret_is_never_kept_through_a_command_line(attribute, workspace, tmp_path):
    if workspace.get("PATH") == "GITPOD":
        gp = tmp_path / "gp"
        gp.write_text("#!/bin/sh\n")
        gp.chmod(0o755)
        workspace = {"PATH": str(tmp_path)}
    settings = Settings.from_env(workspace)

    with pytest.raises(MissingSetting) as raised:
        settings.require(attribute)

    message = str(raised.value)
    variable = raised.value.variable
    assert "--body" not in message and f"gp env {variable}=" not in message
    if "CODESPACES" in workspace:
        assert f"printenv {variable} | gh secret set {variable} --user" in message
