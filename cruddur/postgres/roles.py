"""The app's own login roles: `cruddur_signup` (the Cognito Lambda) and `cruddur_app` (the Flask
backend), each with only the privileges its statements need. Migrations, setup and dumps keep
running as the database owner.

On RDS (the server has role `rds_iam`) both log in with IAM database authentication and have no
password; elsewhere each gets a generated password kept in a file readable by its owner only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from ..errors import DatabaseError, one_line
from ..timeouts import ROLES_LOCK_TIMEOUT
from . import urls
from .connect import connect, set_lock_timeout

SIGNUP = "cruddur_signup"
APP = "cruddur_app"
IAM_ROLE = "rds_iam"  # RDS's role: its members log in with IAM tokens only
SCHEMA = "public"

# What the post-confirmation statement (lambda/cruddur_post_confirmation.py SAVE_USER) does to
# public.users: insert these columns, or take a seeded row over by updating these. It reads the
# row's system column xmax (inserted or claimed?), which only a whole-table SELECT allows.
# Nothing else, and no DELETE.
USERS_TABLE = "users"
SIGNUP_INSERTS = ("display_name", "email", "handle", "cognito_user_id")
SIGNUP_UPDATES = ("display_name", "email", "cognito_user_id")
# The backend reads and writes rows; it never changes the schema nor the migrations' record.
APP_TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE")
APP_SEQUENCE_PRIVILEGES = ("USAGE", "SELECT", "UPDATE")
NOT_FOR_APP = ("schema_migrations",)

# Role attributes and the value each of the app's roles must have.
ATTRIBUTES = {
    "rolcanlogin": ("LOGIN", True),
    "rolsuper": ("NOSUPERUSER", False),
    "rolcreaterole": ("NOCREATEROLE", False),
    "rolcreatedb": ("NOCREATEDB", False),
    "rolreplication": ("NOREPLICATION", False),
    "rolbypassrls": ("NOBYPASSRLS", False),
}


@dataclass(frozen=True)
class Names:
    """The two roles' names (the defaults everywhere but in tests, where roles are server-wide)."""

    signup: str = SIGNUP
    app: str = APP

    def __iter__(self):
        return iter((self.signup, self.app))


@dataclass(frozen=True)
class Role:
    """One role after roles.apply: how it logs in, and what changed."""

    name: str
    created: bool
    iam: bool  # logs in with IAM tokens (RDS), no password
    password_file: Path | None
    changes: tuple[str, ...]  # attributes set, objects handed back to the owner


@dataclass(frozen=True)
class Outcome:
    roles: tuple[Role, ...]
    users_table: bool  # public.users exists (cruddur_signup's grants need it)
    public_create_revoked: bool  # PUBLIC could create in schema public before (PostgreSQL < 15)
    granted: dict[str, dict[str, list[str]]]  # per role, read back after the commit: table -> privileges


def password_path(folder: Path, role: str) -> Path:
    """Where a role's generated password is kept."""
    return folder / f"{role}-password"


def password_folder(url: str, local_pgdata: Path | None, secrets_root: Path) -> Path:
    """Where the roles' passwords for the URL's server are kept: beside the embedded server's own
    (its data folder) for the local server; else a folder per server under `secrets_root`."""
    if local_pgdata is not None:
        return local_pgdata
    params = urls.parse(url)
    server = f"{params.get('host') or 'localhost'}-{params.get('port') or '5432'}"
    return secrets_root / "".join(char if char.isalnum() or char in ".-_" else "_" for char in server)


def apply(url: str, password_dir: Path | None, names: Names = Names()) -> Outcome:
    """Create or correct both roles and their privileges in the URL's database, in one
    transaction (a failure changes nothing); running it again changes nothing more.

    password_dir: where the generated passwords are kept, on servers without IAM
    authentication (it is made, mode 0700, when needed)."""
    try:
        with connect(url) as conn, conn.transaction():
            set_lock_timeout(conn, ROLES_LOCK_TIMEOUT, local=True)
            iam = _has_role(conn, IAM_ROLE)
            if not iam and password_dir is None:
                raise DatabaseError(f"{urls.describe(url)} has no role {IAM_ROLE} (not RDS): the roles need a folder for their passwords")
            done = [_ensure_role(conn, name, iam, password_dir) for name in names]
            revoked = _close_schema(conn, names)
            users = grant(conn, names)
    except psycopg.Error as e:
        raise DatabaseError(f"cannot set up the roles in {urls.describe(url)}: {one_line(e)}; nothing was changed") from None
    with connect(url) as conn:
        granted = {name: privileges(conn, name) for name in names}
    return Outcome(tuple(done), users, revoked, granted)


def regrant_database(url: str) -> bool:
    """regrant() on the URL's database, in one transaction (after a file load, a restore)."""
    try:
        with connect(url) as conn, conn.transaction():
            return regrant(conn)
    except psycopg.Error as e:
        raise DatabaseError(f"cannot grant the app roles their privileges again: {one_line(e)}; run inv db.roles") from None


def regrant(conn: psycopg.Connection, names: Names = Names()) -> bool:
    """Grant the privileges again on this database if its roles exist (after a rebuild or a
    migration made new tables); whether they did."""
    if not all(_has_role(conn, name) for name in names):
        return False
    grant(conn, names)
    return True


def grant(conn: psycopg.Connection, names: Names = Names()) -> bool:
    """The privileges on the current database, exactly: whatever else either role held on the
    schema's tables and sequences is revoked. Whether public.users exists (else cruddur_signup
    has nothing yet)."""
    schema = sql.Identifier(SCHEMA)
    signup, app = sql.Identifier(names.signup), sql.Identifier(names.app)
    database = sql.Identifier(conn.info.dbname)
    conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}, {}").format(database, signup, app))
    conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}, {}").format(schema, signup, app))
    for role in (signup, app):
        conn.execute(sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA {} FROM {}").format(schema, role))
        conn.execute(sql.SQL("REVOKE ALL ON ALL SEQUENCES IN SCHEMA {} FROM {}").format(schema, role))

    table_privileges = sql.SQL(", ").join(map(sql.SQL, APP_TABLE_PRIVILEGES))
    sequence_privileges = sql.SQL(", ").join(map(sql.SQL, APP_SEQUENCE_PRIVILEGES))
    conn.execute(sql.SQL("GRANT {} ON ALL TABLES IN SCHEMA {} TO {}").format(table_privileges, schema, app))
    conn.execute(sql.SQL("GRANT {} ON ALL SEQUENCES IN SCHEMA {} TO {}").format(sequence_privileges, schema, app))
    for table in NOT_FOR_APP:
        if _table_exists(conn, table):
            conn.execute(sql.SQL("REVOKE ALL ON {} FROM {}").format(sql.Identifier(SCHEMA, table), app))
    # Tables and sequences that later migrations create (as this same owner) are granted too.
    conn.execute(sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT {} ON TABLES TO {}").format(schema, table_privileges, app))
    conn.execute(sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT {} ON SEQUENCES TO {}").format(schema, sequence_privileges, app))

    if not _table_exists(conn, USERS_TABLE):
        return False
    users = sql.Identifier(SCHEMA, USERS_TABLE)
    conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(users, signup))
    for privilege, columns in (("INSERT", SIGNUP_INSERTS), ("UPDATE", SIGNUP_UPDATES)):
        conn.execute(
            sql.SQL("GRANT {} ({}) ON {} TO {}").format(sql.SQL(privilege), sql.SQL(", ").join(map(sql.Identifier, columns)), users, signup)
        )
    return True


def _has_role(conn: psycopg.Connection, name: str) -> bool:
    return conn.execute("SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = %s)", (name,)).fetchone()[0]


def _table_exists(conn: psycopg.Connection, table: str) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{SCHEMA}.{table}",)).fetchone()[0]


def _ensure_role(conn: psycopg.Connection, name: str, iam: bool, password_dir: Path | None) -> Role:
    role = sql.Identifier(name)
    found = conn.execute(
        sql.SQL("SELECT {} FROM pg_roles WHERE rolname = %s").format(sql.SQL(", ").join(map(sql.Identifier, ATTRIBUTES))),
        (name,),
    ).fetchone()
    created = found is None
    changes: list[str] = []
    if created:
        # CREATE ROLE's defaults are already NOSUPERUSER NOCREATEDB NOCREATEROLE ...
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(role))
    else:
        # Only what is wrong: on RDS the master user may not even name SUPERUSER or REPLICATION.
        for (keyword, wanted), value in zip(ATTRIBUTES.values(), found):
            if value != wanted:
                conn.execute(sql.SQL("ALTER ROLE {} {}").format(role, sql.SQL(keyword)))
                changes.append(keyword)
        owned = conn.execute("SELECT count(*) FROM pg_class WHERE relowner = %s::regrole", (name,)).fetchone()[0]
        if owned:
            conn.execute(sql.SQL("REASSIGN OWNED BY {} TO CURRENT_USER").format(role))
            changes.append(f"{owned} object(s) it owned handed to {conn.info.user}")
    if iam:
        conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(IAM_ROLE), role))
        conn.execute(sql.SQL("ALTER ROLE {} PASSWORD NULL").format(role))
        return Role(name, created, True, None, tuple(changes))
    from .local_server import kept_password, set_password

    password_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = password_path(password_dir, name)
    set_password(conn, name, kept_password(path))
    return Role(name, created, False, path, tuple(changes))


def _close_schema(conn: psycopg.Connection, names: Names) -> bool:
    """Neither role may create objects in the schema. Before PostgreSQL 15 every role could
    (PUBLIC had CREATE on public): that is revoked, the current user keeping it by a grant of
    its own. Whether PUBLIC had it."""
    schema = sql.Identifier(SCHEMA)
    for name in names:
        conn.execute(sql.SQL("REVOKE CREATE ON SCHEMA {} FROM {}").format(schema, sql.Identifier(name)))
    public_may = conn.execute("SELECT has_schema_privilege('public', %s, 'CREATE')", (SCHEMA,)).fetchone()[0]
    if not public_may:
        return False
    owner = conn.execute("SELECT nspowner::regrole::text = current_user FROM pg_namespace WHERE nspname = %s", (SCHEMA,)).fetchone()[0]
    if not owner:
        conn.execute(sql.SQL("GRANT CREATE ON SCHEMA {} TO CURRENT_USER").format(schema))
    conn.execute(sql.SQL("REVOKE CREATE ON SCHEMA {} FROM PUBLIC").format(schema))
    return True


def privileges(conn: psycopg.Connection, name: str) -> dict[str, list[str]]:
    """What the role may do to each table of the schema (whole-table privileges, and the
    columns of column grants), read from the catalog: the proof after apply."""
    rows = conn.execute(
        """
        SELECT c.relname, p.privilege_type
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          CROSS JOIN unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE']) WITH ORDINALITY AS p(privilege_type, rank)
         WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p')
           AND has_table_privilege(%(role)s, c.oid, p.privilege_type)
         ORDER BY c.relname, p.rank
        """,
        {"schema": SCHEMA, "role": name},
    ).fetchall()
    found: dict[str, list[str]] = {}
    for table, privilege in rows:
        found.setdefault(table, []).append(privilege)
    columns = conn.execute(
        """
        SELECT c.relname, p.privilege_type, string_agg(a.attname, ', ' ORDER BY a.attnum)
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
          CROSS JOIN unnest(ARRAY['SELECT', 'INSERT', 'UPDATE']) AS p(privilege_type)
         WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p')
           AND NOT has_table_privilege(%(role)s, c.oid, p.privilege_type)
           AND has_column_privilege(%(role)s, c.oid, a.attnum, p.privilege_type)
         GROUP BY c.relname, p.privilege_type
         ORDER BY c.relname, p.privilege_type
        """,
        {"schema": SCHEMA, "role": name},
    ).fetchall()
    for table, privilege, column_list in columns:
        found.setdefault(table, []).append(f"{privilege} ({column_list})")
    return found
