"""Cognito post-confirmation trigger: insert the newly confirmed user into public.users.

Lambda handler setting: cruddur_post_confirmation.lambda_handler. Runs with psycopg (3) alone,
nothing from the project's library; reads CONNECTION_URL from the function's environment.
"""

from __future__ import annotations

import logging
import os
import re

import psycopg

CONFIRM_SIGN_UP = "PostConfirmation_ConfirmSignUp"

# Cognito gives a trigger 5 s in all; leave time for the insert and for one reconnect.
CONNECT_TIMEOUT_SECONDS = 3
# A reused connection whose server vanished (failover) would otherwise wait minutes for TCP to
# give up on an unacknowledged send; after 1 s the send fails and we reconnect instead.
TCP_USER_TIMEOUT_MS = 1000

# request.userAttributes key -> users column. Cognito retries a slow or failed trigger up to
# 3 times, so the insert must be idempotent: a retried event finds its row and does nothing.
COLUMNS = {
    "name": "display_name",
    "email": "email",
    "preferred_username": "handle",
    "sub": "cognito_user_id",
}
INSERT_USER = """
    INSERT INTO public.users (display_name, email, handle, cognito_user_id)
    VALUES (%(name)s, %(email)s, %(preferred_username)s, %(sub)s)
    ON CONFLICT (cognito_user_id) DO NOTHING
"""

log = logging.getLogger("cruddur_post_confirmation")
log.setLevel(logging.INFO)

# One connection per execution environment, reused by every warm invocation.
_connection: psycopg.Connection | None = None
_connection_url: str | None = None


class MissingAttribute(KeyError):
    """The event lacks a user attribute the users row needs (inserting NULL would hide it), or
    carries no request.userAttributes object at all (attribute None)."""

    def __init__(self, attribute: str | None):
        super().__init__(attribute)
        self.attribute = attribute

    def __str__(self) -> str:
        if self.attribute is None:
            return "request.userAttributes is missing or not an object"
        return f"request.userAttributes.{self.attribute} is missing or empty"


class UserNotSaved(RuntimeError):
    """The database could not be reached or refused the insert; Cognito will retry the trigger."""


def lambda_handler(event: dict, context: object) -> dict:
    """Cognito's entry point: returns the event unchanged, or raises so the sign-up is retried."""
    connection_url = os.environ.get("CONNECTION_URL")
    if not connection_url:
        raise RuntimeError("CONNECTION_URL is not set in the function's environment")
    return handle(event, connection_url)


def handle(event: dict, connection_url: str) -> dict:
    """The handler's work, with the database given explicitly (for local runs)."""
    trigger = event.get("triggerSource")
    attributes = user_attributes(event)
    sub = (attributes or {}).get("sub")
    # One line per call, without PII: the trigger and Cognito's opaque user id only.
    line = f"post-confirmation trigger={trigger} sub={sub}"
    if trigger != CONFIRM_SIGN_UP:
        log.info("%s outcome=skipped", line)
        return event
    try:
        user = _user_values(attributes)
        inserted = _insert(connection_url, user)
    except MissingAttribute as e:
        log.error("%s outcome=failed error=%s", line, e)
        raise
    except psycopg.Error as e:
        reason = _describe(e)
        log.error("%s outcome=failed error=%s", line, reason)
        if e.diag.sqlstate:
            raise UserNotSaved(f"user {sub} not saved: {reason}") from e
        # A client-side error's own text may quote the URL: keep it out of any printed chain too.
        raise UserNotSaved(f"user {sub} not saved: {reason}") from None
    log.info("%s outcome=%s", line, "inserted" if inserted else "already-present")
    return event


def user_attributes(event: dict) -> dict | None:
    """The event's request.userAttributes, or None when the event has no such object."""
    request = event.get("request")
    attributes = request.get("userAttributes") if isinstance(request, dict) else None
    return attributes if isinstance(attributes, dict) else None


def _user_values(attributes: dict | None) -> dict[str, str]:
    if attributes is None:
        raise MissingAttribute(None)
    values = {}
    for attribute in COLUMNS:
        value = attributes.get(attribute)
        if not isinstance(value, str) or not value.strip():
            raise MissingAttribute(attribute)
        values[attribute] = value
    return values


def _connect(connection_url: str) -> psycopg.Connection:
    return psycopg.connect(
        connection_url,
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        tcp_user_timeout=TCP_USER_TIMEOUT_MS,
        autocommit=True,
        application_name="cruddur-post-confirmation",
    )


def _insert(connection_url: str, user: dict[str, str]) -> bool:
    """Insert the user; False if the row was already there. Reconnects once on a dropped connection."""
    reused = _connection is not None and not _connection.closed and _connection_url == connection_url
    if not reused:
        _open(connection_url)
    try:
        return _connection.execute(INSERT_USER, user).rowcount == 1
    except psycopg.OperationalError:
        if not reused:
            raise
    # The server dropped the idle connection between invocations (restart, failover, idle
    # timeout). The insert is idempotent, so trying it once more on a new connection is safe.
    _open(connection_url)
    return _connection.execute(INSERT_USER, user).rowcount == 1


def _open(connection_url: str) -> None:
    global _connection, _connection_url
    close_connection()
    _connection = _connect(connection_url)
    _connection_url = connection_url


def close_connection() -> None:
    global _connection, _connection_url
    if _connection is not None:
        _connection.close()
    _connection = _connection_url = None


def _describe(error: psycopg.Error) -> str:
    """The error's type and primary message: never its DETAIL, which quotes the row's values."""
    diag = error.diag
    if diag.sqlstate:
        return f"{type(error).__name__} (SQLSTATE {diag.sqlstate}): {diag.message_primary}"
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
    # Client-side errors quote the part of a malformed URL they choke on, which may be the
    # password ("sec%zzret", 'pw@host'): keep only quoted punctuation such as "=".
    return f"{type(error).__name__}: {hide_quoted(first_line)}"


_QUOTED = re.compile(r""""[^"]*"|'[^']*'""")


def hide_quoted(text: str) -> str:
    """The text with every quoted part that holds a letter or digit shown as "...".

    A copy of cruddur.errors.hide_quoted (this file ships alone); a test keeps the two alike."""
    return _QUOTED.sub(lambda quoted: '"..."' if re.search(r"\w", quoted.group(0)) else quoted.group(0), text)
