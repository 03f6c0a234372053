"""A held-out corpus of migrations on Cruddur's schema (sql/schema.sql): each unsafe one with the
hazard rules the plan must flag, each safe one with none. Shared by the hazard benchmark and the
tests; its cases were written apart from the ones the rules were developed against.

Each case: (name, up section, transaction, expected rules). Cases run one after another on one
copy of the schema, so each touches columns and names of its own."""

from __future__ import annotations

UNSAFE = [
    ("index_on_messages", "CREATE INDEX activities_message_idx ON public.activities (message);", True, {"index-without-concurrently"}),
    ("unique_index_on_emails", "CREATE UNIQUE INDEX users_email_idx ON users (lower(email));", True, {"index-without-concurrently"}),
    ("reindex_user_index", "REINDEX INDEX activities_user_uuid_idx;", True, {"index-without-concurrently"}),
    ("replies_to_bigint", "ALTER TABLE activities ALTER COLUMN replies_count TYPE bigint;", True, {"type-change-rewrite"}),
    ("display_name_to_varchar", "ALTER TABLE users ALTER COLUMN display_name SET DATA TYPE varchar(80);", True, {"type-change-rewrite"}),
    (
        "reply_foreign_key",
        "ALTER TABLE activities ADD CONSTRAINT activities_reply_fk FOREIGN KEY (reply_to_activity_uuid) REFERENCES activities (uuid);",
        True,
        {"foreign-key-without-not-valid"},
    ),
    (
        "message_length_check",
        "ALTER TABLE activities ADD CONSTRAINT activities_message_length CHECK (char_length(message) <= 1024);",
        True,
        {"check-without-not-valid"},
    ),
    ("expires_not_null", "ALTER TABLE activities ALTER COLUMN expires_at SET NOT NULL;", True, {"set-not-null-without-check"}),
    ("users_token", "ALTER TABLE users ADD COLUMN api_token uuid DEFAULT gen_random_uuid();", True, {"volatile-default-rewrite"}),
    (
        "seen_at_clock",
        "ALTER TABLE activities ADD COLUMN seen_at timestamptz NOT NULL DEFAULT clock_timestamp();",
        True,
        {"volatile-default-rewrite"},
    ),
    ("serial_position", "ALTER TABLE activities ADD COLUMN position bigserial;", True, {"volatile-default-rewrite"}),
    ("cluster_activities", "CLUSTER activities USING activities_created_at_idx;", True, {"rewrite-under-lock"}),
    ("unique_handle_constraint", "ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email);", True, {"scan-under-lock"}),
    (
        "check_validated_in_the_same_transaction",
        "ALTER TABLE users ADD CONSTRAINT users_handle_length CHECK (char_length(handle) < 64) NOT VALID;\n"
        "ALTER TABLE users VALIDATE CONSTRAINT users_handle_length;",
        True,
        {"scan-under-lock"},
    ),
]

SAFE = [
    ("concurrent_index", "CREATE INDEX CONCURRENTLY activities_expires_idx ON activities (expires_at);", False, set()),
    ("drop_index_concurrently", "DROP INDEX CONCURRENTLY activities_created_at_idx;", False, set()),
    ("nullable_column", "ALTER TABLE users ADD COLUMN location text;", True, set()),
    ("constant_default", "ALTER TABLE activities ADD COLUMN pinned boolean NOT NULL DEFAULT false;", True, set()),
    ("stable_default", "ALTER TABLE activities ADD COLUMN edited_at timestamptz DEFAULT now();", True, set()),
    ("set_default", "ALTER TABLE activities ALTER COLUMN message SET DEFAULT '';", True, set()),
    ("rename_column", "ALTER TABLE users RENAME COLUMN display_name TO full_name;", True, set()),
    ("drop_column", "ALTER TABLE activities DROP COLUMN reposts_count;", True, set()),
    (
        "foreign_key_not_valid_then_validate",
        "ALTER TABLE activities ADD CONSTRAINT activities_reply_fk2 FOREIGN KEY (reply_to_activity_uuid) REFERENCES activities (uuid) NOT VALID;\n"
        "ALTER TABLE activities VALIDATE CONSTRAINT activities_reply_fk2;",
        False,
        set(),
    ),
    (
        "check_not_valid",
        "ALTER TABLE activities ADD CONSTRAINT activities_likes_positive CHECK (likes_count >= 0) NOT VALID;",
        True,
        set(),
    ),
    ("validate_later", "ALTER TABLE activities VALIDATE CONSTRAINT activities_likes_positive;", True, set()),
    (
        "not_null_through_a_check",
        "ALTER TABLE users ADD CONSTRAINT users_email_present CHECK (email IS NOT NULL) NOT VALID;\n"
        "ALTER TABLE users VALIDATE CONSTRAINT users_email_present;\n"
        "ALTER TABLE users ALTER COLUMN email SET NOT NULL;\n"
        "ALTER TABLE users DROP CONSTRAINT users_email_present;",
        False,
        set(),
    ),
    (
        "unique_through_a_concurrent_index",
        "CREATE UNIQUE INDEX CONCURRENTLY users_cognito_unique ON users (cognito_user_id);\n"
        "ALTER TABLE users ADD CONSTRAINT users_cognito_unique UNIQUE USING INDEX users_cognito_unique;",
        False,
        set(),
    ),
    (
        "everything_on_a_new_table",
        "CREATE TABLE public.follows (follower uuid NOT NULL, followed uuid NOT NULL, since int);\n"
        "CREATE INDEX follows_followed_idx ON follows (followed);\n"
        "ALTER TABLE follows ALTER COLUMN since TYPE bigint;\n"
        "ALTER TABLE follows ADD CONSTRAINT follows_follower_fk FOREIGN KEY (follower) REFERENCES users (uuid);\n"
        "ALTER TABLE follows ADD CONSTRAINT follows_not_self CHECK (follower <> followed);\n"
        "ALTER TABLE follows ADD COLUMN token uuid DEFAULT gen_random_uuid();\n"
        "ALTER TABLE follows ALTER COLUMN since SET NOT NULL;",
        True,
        set(),
    ),
    ("widen_after_new_column", "ALTER TABLE users ADD COLUMN nickname varchar(20);", True, set()),
    ("new_column_with_foreign_key", "ALTER TABLE activities ADD COLUMN quoted_uuid uuid REFERENCES activities (uuid);", True, set()),
]

CASES = UNSAFE + SAFE


def migration_text(up: str, transaction: bool) -> str:
    """The case as a dbmate migration file."""
    return f"-- migrate:up{'' if transaction else ' transaction:false'}\n{up}\n\n-- migrate:down\n"
