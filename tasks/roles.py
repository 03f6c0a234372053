"""The app's login roles: cruddur_signup (the Lambda) and cruddur_app (the Flask backend)."""

from ._cli import PROD_HELP, YES_HELP, app_database, settings, task
from ._protocol import confirm, is_dry


@task(help={"prod": PROD_HELP, "yes": YES_HELP})
def roles(c, prod=False, yes=False):
    """Create or correct the app's login roles and their privileges (run again any time).

    cruddur_signup may only insert and claim users (the Lambda); cruddur_app reads and writes the
    app's rows (the backend). On RDS both log in with IAM tokens; elsewhere each gets a generated
    password in a file readable by you only, never printed.
    """
    from cruddur.postgres import local_server, urls
    from cruddur.postgres import roles as library

    config = settings()
    target = app_database(prod, dry=is_dry(c))
    folder = library.password_folder(target.url, config.pgdata if target.local else None, config.project_dir / ".secrets")
    print(f"will create or correct the login roles {library.SIGNUP} and {library.APP} and their privileges on {target}")
    if not confirm(c, target, f"create or change the roles {library.SIGNUP} and {library.APP} for", yes):
        return
    outcome = library.apply(target.url, folder)
    print(f"roles on {target}:")
    for role in outcome.roles:
        how = f"logs in with IAM tokens ({library.IAM_ROLE}), no password" if role.iam else f"password in {role.password_file} (yours only)"
        state = "created" if role.created else "checked"
        changes = f"; corrected: {', '.join(role.changes)}" if role.changes else ""
        print(f"  {role.name}: {state}, {how}{changes}")
    if outcome.public_create_revoked:
        print("  schema public: no longer open to CREATE by every role (as PostgreSQL 15 and later have it)")
    for name, tables in outcome.granted.items():
        may = "; ".join(f"{table}: {', '.join(privileges)}" for table, privileges in tables.items()) or "nothing yet"
        print(f"  {name} may: {may}")
    if not outcome.users_table:
        print(f"  {library.SIGNUP} gets its grants once public.users exists: db.setup and db.migrate grant them again")
    app = outcome.roles[1]
    if target.local and app.password_file:
        found = local_server.lock_file(config.pgdata)
        if found is not None:
            print(f"for the Flask backend as {library.APP} (TCP; the line reads the password from its file):")
            print(local_server.export_line(config.pgdata, found.port, target.dbname, library.APP, app.password_file))
    elif app.iam:
        host = urls.parse(target.url).get("host")
        print(f"for the Flask backend: Database.iam({host!r}, {target.dbname!r}, {library.APP!r}) (cruddur.postgres.client; no password)")
