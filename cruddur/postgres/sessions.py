"""Who is connected: rows of pg_stat_activity, readable by any user (as on RDS)."""

from __future__ import annotations

from psycopg import sql

from .connect import CLIENT_SESSION, connect

QUERY_WIDTH = 60

SESSIONS_SQL = sql.SQL("""
SELECT pid,
       usename AS "user",
       datname AS db,
       host(client_addr) AS client_addr,
       application_name AS app,
       state,
       backend_type,
       nullif(concat_ws(':', wait_event_type, wait_event), '') AS wait_event,
       CASE WHEN state_change IS NOT NULL
            THEN round(extract(epoch FROM greatest(clock_timestamp() - state_change, '0'))::numeric, 3)::float8
       END AS state_seconds,
       CASE WHEN query_start IS NOT NULL
            THEN round(extract(epoch FROM greatest(clock_timestamp() - query_start, '0'))::numeric, 3)::float8
       END AS query_seconds,
       left(btrim(regexp_replace(query, '\\s+', ' ', 'g')), %(width)s) AS query,
       pg_blocking_pids(pid) AS blocked_by,
       pid = pg_backend_pid() AS this_session
FROM pg_stat_activity
WHERE %(all)s OR {client_session}
ORDER BY datname NULLS LAST, backend_start, pid
""").format(client_session=sql.SQL(CLIENT_SESSION))


def list_sessions(url: str, include_server_processes: bool = False, width: int = QUERY_WIDTH) -> list[dict]:
    """One dict per session. Client backends only unless include_server_processes."""
    with connect(url, autocommit=True) as conn:
        cursor = conn.execute(SESSIONS_SQL, {"all": include_server_processes, "width": width})
        names = [column.name for column in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]
