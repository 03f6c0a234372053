"""Everything that talks to PostgreSQL: URLs, admin work (create, drop, load), the embedded
local server, psql, sessions, and the connection-pool client the Flask backend uses."""
