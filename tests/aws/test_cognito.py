"""The Cognito library against moto's cognito-idp (which pages ListUsers at 60, as AWS does) and a
real PostgreSQL: listing every user, cognito.sync's plan and its one transaction, the trigger."""

from __future__ import annotations

import json

import boto3
import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cruddur.aws import clients, cognito
from cruddur.aws.cognito import CognitoUser, Row
from cruddur.config import Settings
from cruddur.errors import AwsError, ConfigError, DatabaseError, MissingSetting
from tests.aws_support import REGION
from tests.helpers import examples

PAGE = 60


def make_pool(idp, **options) -> dict:
    return idp.create_user_pool(PoolName="cruddur-user-pool", **options)["UserPool"]


def add_cognito_user(idp, pool_id: str, username: str, preferred_username: str | None = None, email: str | None = None) -> str:
    """A user of the pool; returns its sub."""
    attributes = [{"Name": "email", "Value": email or f"{username}@example.com"}]
    if preferred_username is not None:
        attributes.append({"Name": "preferred_username", "Value": preferred_username})
    user = idp.admin_create_user(UserPoolId=pool_id, Username=username, UserAttributes=attributes)["User"]
    return next(a["Value"] for a in user["Attributes"] if a["Name"] == "sub")


def add_row(url: str, handle: str, cognito_user_id: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO public.users (display_name, handle, email, cognito_user_id) VALUES (%s, %s, %s, %s)",
            (handle.title(), handle, f"{handle}@example.com", cognito_user_id),
        )


def ids_by_handle(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        return dict(conn.execute("SELECT handle, cognito_user_id FROM public.users").fetchall())


@pytest.fixture
def idp(mocked_aws):
    return clients.client("cognito-idp")


def test_list_users_reads_every_page(idp):
    pool = make_pool(idp)
    subs = {add_cognito_user(idp, pool["Id"], f"user{i:03}", f"handle{i:03}") for i in range(2 * PAGE + 5)}
    assert len(idp.list_users(UserPoolId=pool["Id"])["Users"]) == PAGE  # one call is one page

    found = cognito.list_users(idp, pool["Id"])

    assert {user.sub for user in found} == subs
    user = next(u for u in found if u.username == "user007")
    assert (user.preferred_username, user.email, user.status) == ("handle007", "user007@example.com", "FORCE_CHANGE_PASSWORD")
    assert user.created is not None


def test_a_user_without_preferred_username_is_listed_with_none(idp):
    pool = make_pool(idp)
    add_cognito_user(idp, pool["Id"], "no-handle")

    (user,) = cognito.list_users(idp, pool["Id"])

    assert user.preferred_username is None


def test_a_missing_pool_is_one_line_with_the_aws_code(idp):
    with pytest.raises(AwsError) as raised:
        cognito.list_users(idp, "us-east-1_Nope12345")

    assert raised.value.code == "ResourceNotFoundException"
    assert str(raised.value).startswith("AWS ListUsers failed: ResourceNotFoundException:")


def test_the_pool_id_comes_from_settings_and_is_checked():
    with pytest.raises(MissingSetting, match="AWS_COGNITO_USER_POOL_ID is not set: export AWS_COGNITO_USER_POOL_ID="):
        cognito.pool_id(Settings.from_env({}))
    with pytest.raises(ConfigError, match="'not a pool' is not a user pool id"):
        cognito.pool_id(Settings.from_env({"AWS_COGNITO_USER_POOL_ID": "not a pool"}))
    assert cognito.pool_id(Settings.from_env({"AWS_COGNITO_USER_POOL_ID": " us-east-1_AbC123 "})) == "us-east-1_AbC123"


def test_sync_sets_ids_over_several_pages_and_reports_every_category(idp, schema_url):
    pool = make_pool(idp)
    # 65 signed-up users whose handles were seeded with placeholders: more than one page.
    subs = {f"seeded{i:02}": add_cognito_user(idp, pool["Id"], f"seeded{i:02}", f"seeded{i:02}") for i in range(PAGE + 5)}
    for handle in subs:
        add_row(schema_url, handle, f"MOCK-{handle}")
    right = add_cognito_user(idp, pool["Id"], "right", "right")
    add_row(schema_url, "right", right)
    add_cognito_user(idp, pool["Id"], "stranger", "stranger")  # no row
    add_row(schema_url, "notyet", "MOCK-notyet")  # no Cognito user
    add_cognito_user(idp, pool["Id"], "anonymous")  # no preferred_username
    moved = add_cognito_user(idp, pool["Id"], "moved", "moved-handle")
    add_row(schema_url, "moved-handle", "MOCK-moved")
    add_row(schema_url, "old-handle", moved)  # the sub is already another row's

    plan = cognito.sync(schema_url, cognito.list_users(idp, pool["Id"]))

    assert sorted((u.handle, u.old, u.new) for u in plan.updated) == sorted((h, f"MOCK-{h}", s) for h, s in subs.items())
    assert plan.already_right == ["right"]
    assert [u.username for u in plan.no_row] == ["stranger"]
    assert plan.no_cognito_user == [Row("notyet", "MOCK-notyet"), Row("old-handle", moved)]
    assert [row.placeholder for row in plan.no_cognito_user] == [True, False]
    assert [u.username for u in plan.no_preferred_username] == ["anonymous"]
    assert [(s.handle, s.sub, s.held_by) for s in plan.sub_in_use] == [("moved-handle", moved, "old-handle")]
    ids = ids_by_handle(schema_url)
    assert all(ids[handle] == sub for handle, sub in subs.items())
    assert (ids["moved-handle"], ids["old-handle"], ids["notyet"]) == ("MOCK-moved", moved, "MOCK-notyet")


def test_sync_replaces_only_placeholders_and_reports_a_handle_another_user_holds(idp, schema_url):
    pool = make_pool(idp)
    owner = add_cognito_user(idp, pool["Id"], "andrew", "andrewbrown")
    add_row(schema_url, "andrewbrown", owner)
    # The row keeps the real id of an earlier sign-up, since deleted from the pool; a new Cognito
    # user naming that handle does not take it over (the sign-up trigger refuses it too).
    idp.admin_delete_user(UserPoolId=pool["Id"], Username="andrew")
    newcomer = add_cognito_user(idp, pool["Id"], "impostor", "andrewbrown")

    plan = cognito.sync(schema_url, cognito.list_users(idp, pool["Id"]))

    assert plan.updated == [] and plan.nothing_to_do
    assert plan.handle_held == [cognito.HandleHeld("andrewbrown", owner, newcomer)]
    assert ids_by_handle(schema_url) == {"andrewbrown": owner}


def test_a_second_sync_has_nothing_to_do(idp, schema_url):
    pool = make_pool(idp)
    add_cognito_user(idp, pool["Id"], "andrew", "andrewbrown")
    add_row(schema_url, "andrewbrown", "MOCK-andrewbrown")
    users = cognito.list_users(idp, pool["Id"])
    cognito.sync(schema_url, users)
    after_first = ids_by_handle(schema_url)

    again = cognito.sync(schema_url, users)

    assert again.nothing_to_do and again.already_right == ["andrewbrown"]
    assert ids_by_handle(schema_url) == after_first


def test_a_plan_that_changed_since_it_was_confirmed_is_refused_and_changes_nothing(idp, schema_url):
    pool = make_pool(idp)
    add_cognito_user(idp, pool["Id"], "andrew", "andrewbrown")
    add_cognito_user(idp, pool["Id"], "bayko", "bayko")
    add_row(schema_url, "andrewbrown", "MOCK-andrewbrown")
    users = cognito.list_users(idp, pool["Id"])
    shown = cognito.sync(schema_url, users, dry_run=True)
    add_row(schema_url, "bayko", "MOCK-bayko")  # while the user reads the plan

    with pytest.raises(DatabaseError, match="changed since you confirmed: 2 row"):
        cognito.sync(schema_url, users, confirmed=shown.updated)

    assert ids_by_handle(schema_url) == {"andrewbrown": "MOCK-andrewbrown", "bayko": "MOCK-bayko"}
    fresh = cognito.sync(schema_url, users, dry_run=True)
    applied = cognito.sync(schema_url, users, confirmed=fresh.updated)
    assert sorted(u.handle for u in applied.updated) == ["andrewbrown", "bayko"]


def test_a_dry_run_changes_nothing(idp, schema_url):
    pool = make_pool(idp)
    add_cognito_user(idp, pool["Id"], "andrew", "andrewbrown")
    add_row(schema_url, "andrewbrown", "MOCK-andrewbrown")

    plan = cognito.sync(schema_url, cognito.list_users(idp, pool["Id"]), dry_run=True)

    assert [u.handle for u in plan.updated] == ["andrewbrown"]
    assert ids_by_handle(schema_url) == {"andrewbrown": "MOCK-andrewbrown"}


def test_a_locked_users_table_is_one_line_and_changes_nothing(idp, schema_url):
    pool = make_pool(idp)
    add_cognito_user(idp, pool["Id"], "andrew", "andrewbrown")
    add_row(schema_url, "andrewbrown", "MOCK-andrewbrown")
    users = cognito.list_users(idp, pool["Id"])
    with psycopg.connect(schema_url) as holder:
        holder.execute("LOCK TABLE public.users IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(DatabaseError, match=r"public.users stayed locked by another session for 5 s"):
            cognito.sync(schema_url, users)

    assert ids_by_handle(schema_url) == {"andrewbrown": "MOCK-andrewbrown"}


def test_sync_without_the_schema_says_what_to_do(database_url):
    with pytest.raises(DatabaseError, match=r"public.users does not exist \(load the schema first: inv db.setup\)"):
        cognito.sync(database_url, [])


# The plan for whole classes of pools and tables: handles are user text, subs may collide.
handles = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=6)
subs = st.sampled_from(["MOCK-a", "MOCK-b", "s1", "s2", "s3", "s4", "s5"])


@st.composite
def pools_and_tables(draw):
    users = draw(st.lists(st.tuples(st.none() | handles, subs), max_size=8, unique_by=lambda u: u[1]))
    rows = draw(st.lists(st.tuples(handles, subs), max_size=8, unique_by=(lambda r: r[0], lambda r: r[1])))
    cognito_users = [CognitoUser(f"user{i}", sub, handle, None, "CONFIRMED", None) for i, (handle, sub) in enumerate(users)]
    return cognito_users, [Row(handle, sub) for handle, sub in rows]


@settings(max_examples=examples(400), deadline=None)
@given(pools_and_tables())
def test_the_plan_sorts_everyone_once_keeps_ids_unique_and_converges(case):
    users, rows = case

    plan = cognito.plan_sync(users, rows)

    placed = [*plan.no_row, *plan.no_preferred_username, *plan.ambiguous]
    by_handle = {u.preferred_username: u for u in users}
    placed += [
        by_handle[h]
        for h in (
            *plan.already_right,
            *(u.handle for u in plan.updated),
            *(s.handle for s in plan.sub_in_use),
            *(h.handle for h in plan.handle_held),
        )
    ]
    assert sorted(u.username for u in placed) == sorted(u.username for u in users)
    assert {r.handle for r in plan.no_cognito_user} == {r.handle for r in rows} - {u.preferred_username for u in users}
    ids = {r.handle: r.cognito_user_id for r in rows}
    ids.update({u.handle: u.new for u in plan.updated})
    assert all(cognito.is_placeholder(u.old) for u in plan.updated)  # a real id is never overwritten
    assert len(set(ids.values())) == len(ids)  # UNIQUE (cognito_user_id) holds after the updates
    assert cognito.plan_sync(users, [Row(h, i) for h, i in ids.items()]).nothing_to_do


# lambda.attach's library half: the trigger and the permission.


def make_function(name: str = "cruddur-post-confirmation") -> str:
    iam = boto3.client("iam", region_name=REGION)
    role = iam.create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    answer = boto3.client("lambda", region_name=REGION).create_function(
        FunctionName=name, Runtime="python3.12", Role=role, Handler="index.handler", Code={"ZipFile": b"PK\x05\x06" + b"\0" * 18}
    )
    return answer["FunctionArn"]


def cognito_statements(function: str) -> list[dict]:
    policy = json.loads(boto3.client("lambda", region_name=REGION).get_policy(FunctionName=function)["Policy"])
    return [s for s in policy["Statement"] if s["Principal"] == {"Service": "cognito-idp.amazonaws.com"}]


def test_attach_sets_the_trigger_grants_invoke_and_keeps_the_pools_other_settings(idp):
    arn = make_function()
    pre_sign_up = "arn:aws:lambda:us-east-1:123456789012:function:pre-sign-up"
    pool = make_pool(idp, LambdaConfig={"PreSignUp": pre_sign_up}, MfaConfiguration="OFF", EmailVerificationSubject="Your Cruddur code")

    attachment = cognito.attach(idp, clients.client("lambda"), pool["Id"], "cruddur-post-confirmation")

    after = idp.describe_user_pool(UserPoolId=pool["Id"])["UserPool"]
    assert after["LambdaConfig"] == {"PreSignUp": pre_sign_up, "PostConfirmation": arn}
    assert after["EmailVerificationSubject"] == "Your Cruddur code"
    assert (attachment.function_arn, attachment.previous_trigger) == (arn, None)
    assert attachment.trigger_changed and attachment.permission_granted
    (statement,) = cognito_statements("cruddur-post-confirmation")
    assert statement["Action"] == "lambda:InvokeFunction"
    assert statement["Condition"]["ArnLike"]["AWS:SourceArn"] == pool["Arn"]


def test_a_second_attach_changes_nothing(idp):
    make_function()
    pool = make_pool(idp)
    cognito.attach(idp, clients.client("lambda"), pool["Id"], "cruddur-post-confirmation")
    modified = idp.describe_user_pool(UserPoolId=pool["Id"])["UserPool"]["LastModifiedDate"]

    again = cognito.attach(idp, clients.client("lambda"), pool["Id"], "cruddur-post-confirmation")

    assert not again.changed
    assert idp.describe_user_pool(UserPoolId=pool["Id"])["UserPool"]["LastModifiedDate"] == modified
    assert len(cognito_statements("cruddur-post-confirmation")) == 1


def test_attach_to_a_missing_function_is_one_line_and_leaves_the_pool_alone(idp):
    pool = make_pool(idp)

    with pytest.raises(AwsError, match=r"^AWS GetFunction failed: ResourceNotFoundException:"):
        cognito.attach(idp, clients.client("lambda"), pool["Id"], "no-such-function")

    assert "PostConfirmation" not in (idp.describe_user_pool(UserPoolId=pool["Id"])["UserPool"].get("LambdaConfig") or {})
