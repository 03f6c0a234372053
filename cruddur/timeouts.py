"""Every time bound the tool keeps, in seconds, in one place: nothing waits without one.

Flag help texts quote these values (never typed again), so a change here shows in `inv --help`.
"""

# Reaching a server: how long a task waits for one before saying why not.
CONNECT_TIMEOUT = 5.0

# Locks another session holds (lock_timeout, or pg_dump's --lock-wait-timeout).
FILE_LOAD_LOCK_TIMEOUT = 5.0  # a schema or seed load waits this long for a lock
MIGRATION_LOCK_TIMEOUT = 5.0  # a migration's statement may queue this long for a table lock
COGNITO_SYNC_LOCK_TIMEOUT = 5.0  # cognito.sync waits this long for the users table
ROLES_LOCK_TIMEOUT = 5.0  # db.roles' grants wait this long for a lock on a table (a long query holds one)
DUMP_LOCK_WAIT = 5.0  # pg_dump waits this long for each table's share lock
SWAP_STEP_WAIT = 5.0  # a rename or drop of the swap waits this long for a lock on its database
MAX_LOCK_TIMEOUT = 86400.0  # the longest lock wait a --lock-timeout flag may ask for (a day)
MIGRATION_RETRY_MAX_PAUSE = 30.0  # db.migrate --retries: the longest pause between two tries
MIGRATION_RETRY_FIRST_PAUSE = 0.5  # ... and the first one (it doubles each try, with jitter)
EXTENSION_LOCK_TIMEOUT = 5.0  # db.slow's CREATE EXTENSION pg_stat_statements waits this long for a lock
TABLE_COUNT_WAIT = 2.0  # a write's plan counts a table's rows this long (lock included), then estimates
CATALOG_READ_LOCK_TIMEOUT = 5.0  # the migration plan's table sizes and the drift check's catalog reads

# The migration plan: one traced statement on the (empty) scratch copy of the target's schema.
PLAN_STATEMENT_TIMEOUT = 60.0

# Ending a session: pg_terminate_backend waits this long for it to be gone (db.kill --root, --pid).
TERMINATE_WAIT = 5.0

# Another run of the same work (session advisory locks). A wait longer than WAIT_NOTICE_AFTER
# says what it waits for, and who holds it (the cruddur.waits logger).
WAIT_NOTICE_AFTER = 1.0
SWAP_LOCK_WAIT = 60.0  # a rebuild waits this long for another one of the same database
RUN_LOCK_WAIT = 120.0  # a migration run waits this long for another run on the same database
ADVISORY_LOCK_MAX_POLL = 0.25  # while waiting, the longest pause between two tries for the lock

# Programs the tool runs: past these they are killed, and one line says which.
# The bootcamp's database dumps in well under a second; an hour leaves room for one a thousand
# times larger on a slow link.
DUMP_LIMIT = 3600.0  # pg_dump, pg_restore, and pg_restore | psql
VERSION_PROBE_LIMIT = 10.0  # `pg_dump --version` and the like
PIP_LIMIT = 600.0  # one pip run: a download of ~8 MB (pip's own timeout is per stalled read)
COMPILE_LIMIT = 120.0  # the Lambda zip's byte code (well under a second here)

# The embedded server.
SERVER_START_TIMEOUT = 30.0  # start-up, old server processes included
SERVER_READY_TIMEOUT = 30.0  # db.wait's default

# The client's pool (the Flask backend).
POOL_CHECKOUT_TIMEOUT = 10.0  # the longest wait for a free connection
POOL_OPEN_TIMEOUT = 10.0  # open(): the first connections work within this
POOL_CLOSE_TIMEOUT = 5.0  # close() waits this long for connections in use
POOL_CHECK_AFTER = 0.5  # a connection idle this long is tested (one round trip) before it is handed out
# Every statement of the client: a request must fail rather than queue behind a migration or a
# forgotten open transaction (Database's lock_timeout and statement_timeout defaults).
CLIENT_LOCK_TIMEOUT = 5.0
CLIENT_STATEMENT_TIMEOUT = 15.0

# Watching and polling.
BLOCKER_POLL_SECONDS = 0.05  # how often the lock watcher looks for a blocking session
BLOCKER_WATCH_AFTER = 0.5  # the watcher opens its connection for a statement still running this long (at most)
SESSIONS_REFRESH_SECONDS = 2.0  # db.sessions --watch's default interval
PROGRESS_POLL_SECONDS = 0.2  # how often a dump's progress line reads the size written so far

# The public IP look-up: per service (connect, read), and for the whole look-up.
IP_LOOKUP_REQUEST_TIMEOUT = (3.05, 4.0)
IP_LOOKUP_DEADLINE = 10.0

# RDS: how long rds.create --wait / rds.wait wait for the instance, and how often they look.
RDS_WAIT_TIMEOUT = 30 * 60.0
RDS_POLL_SECONDS = 15.0
