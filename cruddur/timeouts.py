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

# Another run of the same work (session advisory locks).
SWAP_LOCK_WAIT = 60.0  # a rebuild waits this long for another one of the same database
RUN_LOCK_WAIT = 120.0  # a migration run waits this long for another run on the same database

# The embedded server.
SERVER_START_TIMEOUT = 30.0  # start-up, old server processes included
SERVER_READY_TIMEOUT = 30.0  # db.wait's default

# The client's pool (the Flask backend).
POOL_CHECKOUT_TIMEOUT = 10.0  # the longest wait for a free connection
POOL_OPEN_TIMEOUT = 10.0  # open(): the first connections work within this
POOL_CLOSE_TIMEOUT = 5.0  # close() waits this long for connections in use

# Watching and polling.
BLOCKER_POLL_SECONDS = 0.05  # how often the lock watcher looks for a blocking session
SESSIONS_REFRESH_SECONDS = 2.0  # db.sessions --watch's default interval

# The public IP look-up: per service (connect, read), and for the whole look-up.
IP_LOOKUP_REQUEST_TIMEOUT = (3.05, 4.0)
IP_LOOKUP_DEADLINE = 10.0

# RDS: how long rds.create --wait / rds.wait wait for the instance, and how often they look.
RDS_WAIT_TIMEOUT = 30 * 60.0
RDS_POLL_SECONDS = 15.0
