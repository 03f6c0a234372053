"""`inv db.setup` against the same steps done with psql, on the same embedded server.

Baseline: drop (with force), create, then with `psql -v ON_ERROR_STOP=1 -1 -f`: the schema, the
migration step (schema_migrations, each migration's up section and its row, in one file) and the
seed. db.setup does the same work and more: it builds under a scratch name and swaps it in.
Run: python bench/bench_db_setup.py [rounds]
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from _database import start_server
from _timing import compare, time_command
from psycopg import sql

from cruddur.postgres import local_server, migrations, psql, urls

ROOT = Path(__file__).resolve().parent.parent
# The psql baseline records each migration as dbmate would.
RECORD = sql.SQL("\nINSERT INTO public.schema_migrations (version) VALUES ({});\n")


def main(rounds: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="cruddur-bench-"))
    pgdata = folder / "pgdata"
    try:
        server = start_server(pgdata)
        app_url = urls.with_dbname(server, "cruddur")
        psql_bin = str(psql.find_psql())
        env = {k: v for k, v in os.environ.items() if k not in ("CONNECTION_URL", "PROD_CONNECTION_URL")}
        embedded_env = {**env, "CRUDDUR_PGDATA": str(pgdata), "CRUDDUR_PGPORT": str(urls.parse(server).get("port") or 5432)}
        dev_env = {**env, "CONNECTION_URL": app_url}
        inv = [str(Path(sys.executable).with_name("inv")), "db.setup"]
        migration_step = folder / "migrations.sql"
        migration_step.write_text(
            migrations.TABLE
            + "".join(
                m.up.sql + RECORD.format(sql.Literal(m.version)).as_string(None) for m in migrations.load(ROOT / "sql" / "migrations")
            )
        )
        script = f"""
            set -e
            psql() {{ "{psql_bin}" -X -q "$@"; }}
            psql -d '{server}' -c 'DROP DATABASE IF EXISTS cruddur WITH (FORCE)'
            psql -d '{server}' -c 'CREATE DATABASE cruddur'
            psql -d '{app_url}' -v ON_ERROR_STOP=1 -1 -f sql/schema.sql
            psql -d '{app_url}' -v ON_ERROR_STOP=1 -1 -f '{migration_step}'
            psql -d '{app_url}' -v ON_ERROR_STOP=1 -1 -f sql/seed.sql
        """

        def baseline():
            return time_command(["bash", "-c", script], cwd=ROOT, env=env)

        compare(
            "inv db.setup (embedded default) vs psql steps", lambda: time_command(inv, cwd=ROOT, env=embedded_env), baseline, rounds, 1.6
        )
        compare("inv db.setup (CONNECTION_URL)   vs psql steps", lambda: time_command(inv, cwd=ROOT, env=dev_env), baseline, rounds, 1.6)
    finally:
        local_server.stop(pgdata)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 11)
