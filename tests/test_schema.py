"""sql/schema.sql holds the app to its rules: what the bootcamp's schema let through."""

import psycopg
import pytest
from psycopg import errors


def insert_user(conn, handle="ann", email="ann@example.com", cognito_user_id="c-ann"):
    conn.execute(
        "INSERT INTO users (display_name, handle, email, cognito_user_id) VALUES ('Ann', %s, %s, %s)",
        (handle, email, cognito_user_id),
    )


@pytest.mark.parametrize(
    "second, error",
    [
        ({"handle": "ann", "cognito_user_id": "c-other"}, errors.UniqueViolation),
        ({"handle": "other", "cognito_user_id": "c-ann"}, errors.UniqueViolation),
        ({"handle": "other", "cognito_user_id": "c-other", "email": None}, errors.NotNullViolation),
    ],
)
def test_users_reject_duplicates_and_missing_values(schema_url, second, error):
    with psycopg.connect(schema_url) as conn:
        insert_user(conn)
        conn.commit()
        with pytest.raises(error):
            insert_user(conn, **second)


def test_activities_need_a_real_user_and_reply_to_an_activity(schema_url):
    with psycopg.connect(schema_url) as conn:
        with pytest.raises(errors.ForeignKeyViolation):
            conn.execute("INSERT INTO activities (user_uuid, message) VALUES (gen_random_uuid(), 'orphan')")
        conn.rollback()
        insert_user(conn)
        with pytest.raises(errors.ForeignKeyViolation):
            conn.execute(
                "INSERT INTO activities (user_uuid, message, reply_to_activity_uuid) SELECT uuid, 'reply', gen_random_uuid() FROM users"
            )


def test_column_types(schema_url):
    with psycopg.connect(schema_url) as conn:
        types = dict(
            conn.execute(
                "SELECT table_name || '.' || column_name, data_type FROM information_schema.columns WHERE table_schema = 'public'"
            ).fetchall()
        )
        feed_indexes = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'activities' AND indexdef LIKE '%(created_at DESC%'"
        ).fetchall()
    assert types["activities.reply_to_activity_uuid"] == "uuid"
    assert {types[f"{t}.{c}"] for t, c in [("users", "created_at"), ("activities", "created_at"), ("activities", "expires_at")]} == {
        "timestamp with time zone"
    }
    assert feed_indexes, "the home feed (newest first) needs its index"
