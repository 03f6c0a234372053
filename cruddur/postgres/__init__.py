"""Everything that talks to PostgreSQL: URLs, connecting, which database a task uses, admin work
(create, drop, load, replace by a swap), the embedded local server, psql, sessions and who blocks
whom, migrations, dumps, db.status's findings, and the connection-pool client the Flask backend uses."""
