"""Cognito post-confirmation trigger: save the newly confirmed user in public.users.

A new user is inserted; a user whose handle was seeded with a placeholder Cognito id takes that
row over; a handle held by another real user is an error.

Lambda handler setting: cruddur_post_confirmation.lambda_handler. Runs with psycopg (3) alone,
nothing from the project's library (and botocore, which Lambda provides, in IAM mode only).

Where it connects, from the function's environment:
- DB_AUTH=iam with DB_HOST, DB_PORT, DB_NAME, DB_USER (what lambda.deploy sets): IAM database
  authentication, a token signed from the function's own role (no password anywhere), over TLS;
- else CONNECTION_URL (lambda.invoke and local runs).
"""

from __future__ import annotations

import logging
import os
import time

import psycopg
from psycopg.conninfo import make_conninfo

CONFIRM_SIGN_UP = "PostConfirmation_ConfirmSignUp"

# Cognito gives a trigger 5 s in all. A cold start spends at most CONNECT_TIMEOUT_SECONDS
# connecting and STATEMENT_TIMEOUT_MS in the statement (LOCK_TIMEOUT_MS of it waiting for a lock,
# say behind a migration): 3.5 s at worst. A warm call whose reused connection turns out dead
# spends up to TCP_USER_TIMEOUT_MS finding out, then connects and runs the statement again:
# 1 + 2 + 1.5 = 4.5 s at worst. Either way an error Cognito retries rather than a timeout (a server
# lost after acknowledging the statement is bounded by the function's own 5 s timeout only).
CONNECT_TIMEOUT_SECONDS = 2  # libpq's smallest (it reads 1 as 2)
LOCK_TIMEOUT_MS = 1000
STATEMENT_TIMEOUT_MS = 1500
# A reused connection whose server vanished (failover) would otherwise wait minutes for TCP to
# give up on an unacknowledged send; after 1 s the send fails and we reconnect instead.
TCP_USER_TIMEOUT_MS = 1000
# An IAM token is good for 15 minutes; one is reused for new connections for 10, so that none is
# ever sent about to expire. Signing it is local with the credentials Lambda puts in the
# environment (no network call: the function may sit in a VPC without a NAT), a millisecond once
# botocore is loaded.
TOKEN_LIFETIME_SECONDS = 15 * 60
TOKEN_REUSE_SECONDS = 10 * 60
IAM_SETTINGS = ("DB_HOST", "DB_PORT", "DB_NAME", "DB_USER")

# Seeded users carry a placeholder Cognito id starting with this (sql/seed.sql's 'MOCK-...'):
# a real sign-up with their handle takes the row over. cruddur.aws.cognito holds the same rule
# (this file ships alone); a test keeps the two alike.
PLACEHOLDER_PREFIX = "MOCK"

# request.userAttributes key -> users column.
COLUMNS = {
    "name": "display_name",
    "email": "email",
    "preferred_username": "handle",
    "sub": "cognito_user_id",
}
# One statement, so that a retry or a concurrent sign-up sees all of it or none: insert the user,
# or take over the seeded row holding the handle; otherwise say whose the handle or sub already
# is. Cognito retries a slow or failed trigger up to 3 times: a retried event finds its own row
# (already-present) and changes nothing.
SAVE_USER = """
    WITH saved AS (
        INSERT INTO public.users AS existing (display_name, email, handle, cognito_user_id)
        SELECT %(name)s, %(email)s, %(preferred_username)s, %(sub)s
        WHERE NOT EXISTS (SELECT FROM public.users WHERE cognito_user_id = %(sub)s)
        ON CONFLICT (handle) DO UPDATE
            SET display_name = excluded.display_name, email = excluded.email,
                cognito_user_id = excluded.cognito_user_id
            WHERE starts_with(existing.cognito_user_id, %(placeholder)s)
        RETURNING CASE WHEN existing.xmax = 0 THEN 'inserted' ELSE 'claimed' END AS outcome
    )
    SELECT outcome FROM saved
    UNION ALL
    (SELECT CASE WHEN cognito_user_id = %(sub)s THEN 'already-present' ELSE 'handle-taken' END
       FROM public.users
      WHERE NOT EXISTS (SELECT FROM saved)
        AND (cognito_user_id = %(sub)s OR handle = %(preferred_username)s)
      ORDER BY cognito_user_id = %(sub)s DESC
      LIMIT 1)
"""

log = logging.getLogger("cruddur_post_confirmation")
log.setLevel(logging.INFO)

# One connection per execution environment, reused by every warm invocation; its key says what
# it was opened for (a URL, or the IAM settings).
_connection: psycopg.Connection | None = None
_connection_key: str | None = None
_iam_auth: IamAuth | None = None


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


class BadEvent(ValueError):
    """The event is not one Cognito sends: not a JSON object, or a user attribute that is not
    text Postgres can store (a lone surrogate, which has no UTF-8)."""


class UserNotSaved(RuntimeError):
    """The database could not be reached or refused the insert; Cognito will retry the trigger."""


class TokenNotSigned(UserNotSaved):
    """DB_AUTH=iam could not sign a token: no credentials, a broken AWS configuration, a DB_HOST
    that is no host name."""


class HandleTaken(UserNotSaved):
    """The handle belongs to another real user: an operator must sort it out (Cognito retries
    meanwhile, and the sign-up shows an error rather than a user without a row)."""


def lambda_handler(event: dict, context: object) -> dict:
    """Cognito's entry point: returns the event unchanged, or raises so the sign-up is retried."""
    if os.environ.get("DB_AUTH") == "iam":
        return handle(event, iam_auth(os.environ))
    connection_url = os.environ.get("CONNECTION_URL")
    if not connection_url:
        raise RuntimeError("CONNECTION_URL is not set in the function's environment (nor DB_AUTH=iam with DB_HOST...)")
    return handle(event, connection_url)


class IamAuth:
    """The database by IAM authentication: each new connection gets a token, reused while fresh,
    and TLS (RDS takes a token over TLS only)."""

    def __init__(self, host: str, port: int, dbname: str, user: str, region: str):
        self.host, self.port, self.dbname, self.user, self.region = host, port, dbname, user, region
        self.key = f"iam:{user}@{host}:{port}/{dbname}"
        self._token: str | None = None
        self.signed_at = 0.0
        self._credentials = None

    def token(self, now: float | None = None) -> str:
        """A token signed at most TOKEN_REUSE_SECONDS ago."""
        now = time.monotonic() if now is None else now
        if self._token is None or now - self.signed_at >= TOKEN_REUSE_SECONDS:
            self._token = self._sign()
            self.signed_at = now
        return self._token

    def _sign(self) -> str:
        # botocore's own signer, as boto3's generate_db_auth_token uses it, without making an
        # RDS client: that would load the service's model (megabytes of JSON) into a cold start
        # for a signature that needs none of it. Imported only here: URL mode never pays for it.
        # (cruddur.aws.iam_auth signs the same token through boto3's client; this file ships alone.)
        from botocore.auth import SigV4QueryAuth
        from botocore.awsrequest import AWSRequest
        from botocore.exceptions import BotoCoreError
        from botocore.session import get_session

        try:
            if self._credentials is None:
                self._credentials = get_session().get_credentials()
            if self._credentials is None:
                raise TokenNotSigned("DB_AUTH=iam found no AWS credentials in the function's environment")
            request = AWSRequest(method="GET", url=f"https://{self.host}:{self.port}/", params={"Action": "connect", "DBUser": self.user})
            credentials = self._credentials.get_frozen_credentials()
            SigV4QueryAuth(credentials, "rds-db", self.region, expires=TOKEN_LIFETIME_SECONDS).add_auth(request)
            return request.prepare().url.removeprefix("https://")
        except (BotoCoreError, ValueError) as e:  # ValueError: a DB_HOST no URL can hold (a bare IPv6 address)
            raise TokenNotSigned(f"DB_AUTH=iam cannot sign a token: {type(e).__name__}: {' '.join(str(e).split())}") from None

    def conninfo(self) -> str:
        return make_conninfo(host=self.host, port=self.port, dbname=self.dbname, user=self.user, password=self.token(), sslmode="require")


def iam_auth(environ) -> IamAuth:
    """The IamAuth for the environment's DB_* settings, kept across invocations (with its token)."""
    global _iam_auth
    missing = [name for name in IAM_SETTINGS if not environ.get(name)]
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    if missing or not region:
        raise RuntimeError(f"DB_AUTH=iam needs {', '.join(missing or ['AWS_REGION'])} in the function's environment")
    if not environ["DB_PORT"].isdigit():
        raise RuntimeError("DB_PORT is not a port number")
    wanted = IamAuth(environ["DB_HOST"], int(environ["DB_PORT"]), environ["DB_NAME"], environ["DB_USER"], region)
    if _iam_auth is None or (_iam_auth.key, _iam_auth.region) != (wanted.key, wanted.region):
        _iam_auth = wanted
    return _iam_auth


def handle(event: dict, connection_url: str | IamAuth) -> dict:
    """The handler's work, with the database given explicitly (a URL for local runs)."""
    if not isinstance(event, dict):
        log.error("post-confirmation trigger=None sub=None outcome=failed error=the event is not a JSON object")
        raise BadEvent(f"the event is a {type(event).__name__}, not a JSON object")
    trigger = event.get("triggerSource")
    attributes = user_attributes(event)
    sub = (attributes or {}).get("sub")
    # One line per call, without PII: the trigger and Cognito's opaque user id only.
    line = f"post-confirmation trigger={_loggable(trigger)} sub={_loggable(sub)}"
    if trigger != CONFIRM_SIGN_UP:
        log.info("%s outcome=skipped", line)
        return event
    try:
        user = _user_values(attributes)
        outcome = _save(connection_url, user)
    except (MissingAttribute, BadEvent, TokenNotSigned) as e:
        log.error("%s outcome=failed error=%s", line, e)
        raise
    except psycopg.Error as e:
        reason = _describe(e)
        log.error("%s outcome=failed error=%s", line, reason)
        if e.diag.sqlstate:
            raise UserNotSaved(f"user {sub} not saved: {reason}") from e
        # A client-side error's own text may quote the URL: keep it out of any printed chain too.
        raise UserNotSaved(f"user {sub} not saved: {reason}") from None
    if outcome == "handle-taken":
        log.error("%s outcome=handle-taken", line)
        raise HandleTaken(f"user {sub} not saved: another user already has the handle")
    if outcome is None:
        # The row holding the handle or sub was committed after this statement's snapshot.
        log.error("%s outcome=failed error=concurrent sign-up", line)
        raise UserNotSaved(f"user {sub} not saved: a concurrent sign-up changed the row; retry")
    log.info("%s outcome=%s", line, outcome)
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
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise BadEvent(f"request.userAttributes.{attribute} is not valid text (it holds a lone surrogate)") from None
        values[attribute] = value
    return values


def _loggable(value: object) -> str:
    """A value for the log line: a lone surrogate (no UTF-8 for it) shown escaped, as \\udc80."""
    return str(value).encode("utf-8", "backslashreplace").decode("utf-8")


def _connect(connection_url: str | IamAuth) -> psycopg.Connection:
    try:
        if isinstance(connection_url, IamAuth):
            return _open_connection(connection_url.conninfo())
        return _open_connection(connection_url)
    except UnicodeError:
        # psycopg decodes the URL's percent codes as UTF-8 before libpq sees it, and its own error
        # is no psycopg.Error: it would escape as a traceback (and be no retryable UserNotSaved).
        raise psycopg.ProgrammingError("CONNECTION_URL holds a percent code that is not UTF-8") from None


def _open_connection(connection_url: str) -> psycopg.Connection:
    return psycopg.connect(
        connection_url,
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        tcp_user_timeout=TCP_USER_TIMEOUT_MS,
        # Sent with the start-up packet: no extra round trip.
        options=f"-c lock_timeout={LOCK_TIMEOUT_MS} -c statement_timeout={STATEMENT_TIMEOUT_MS}",
        autocommit=True,
        application_name="cruddur-post-confirmation",
    )


def _key(connection_url: str | IamAuth) -> str:
    return connection_url.key if isinstance(connection_url, IamAuth) else connection_url


def _save(connection_url: str | IamAuth, user: dict[str, str]) -> str | None:
    """Save the user; the outcome (inserted, claimed, already-present, handle-taken).

    Reconnects once when a reused connection turns out broken. A timeout, a lock wait or a
    deadlock leaves the connection usable and is raised at once: a second try would only spend
    the rest of Cognito's budget on the same wait."""
    reused = _connection is not None and not _connection.closed and _connection_key == _key(connection_url)
    if not reused:
        _open(connection_url)
    try:
        return _execute(user)
    except psycopg.OperationalError:
        if not reused or not _connection.broken:
            raise
    # The server dropped the idle connection between invocations (restart, failover, idle
    # timeout). The statement is idempotent, so trying it once more on a new connection is safe.
    _open(connection_url)
    return _execute(user)


def _execute(user: dict[str, str]) -> str | None:
    row = _connection.execute(SAVE_USER, {**user, "placeholder": PLACEHOLDER_PREFIX}).fetchone()
    return row[0] if row else None


def _open(connection_url: str | IamAuth) -> None:
    global _connection, _connection_key
    close_connection()
    _connection = _connect(connection_url)
    _connection_key = _key(connection_url)


def close_connection() -> None:
    global _connection, _connection_key
    if _connection is not None:
        _connection.close()
    _connection = _connection_key = None


def _describe(error: psycopg.Error) -> str:
    """The error's type and primary message: never its DETAIL, which quotes the row's values."""
    diag = error.diag
    if diag.sqlstate:
        return f"{type(error).__name__} (SQLSTATE {diag.sqlstate}): {diag.message_primary}"
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
    # Client-side errors quote the part of a malformed URL they choke on, which may be the
    # password ("sec%zzret", 'pw@host').
    return f"{type(error).__name__}: {hide_quoted(first_line)}"


# libpq's own quoted punctuation, kept: a password can only appear inside the quotes of a value.
_LIBPQ_WORDS = ('separator "="', 'missing "="', 'matching "]"', '(expected ":" or "/")')


def hide_quoted(text: str) -> str:
    """The text with the stretch from its first quote to its last shown as "...".

    libpq (and others) quote the piece of a malformed URL they choke on, which may be the
    password. A password may itself hold quotes, so quoted parts cannot be told apart from the
    text between them: all of it goes. libpq's own quoted punctuation (`missing "="`) stays.

    A copy of cruddur.errors.hide_quoted (this file ships alone); a test keeps the two alike."""
    for index, words in enumerate(_LIBPQ_WORDS):
        text = text.replace(words, f"\0{index}\0")
    quotes = [at for at, char in enumerate(text) if char in "\"'"]
    if quotes:
        text = f'{text[: quotes[0]]}"..."{text[quotes[-1] + 1 :]}'
    for index, words in enumerate(_LIBPQ_WORDS):
        text = text.replace(f"\0{index}\0", words)
    return text
