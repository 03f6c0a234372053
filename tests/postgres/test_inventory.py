"""The tables a plan lists: read again once when a swap ends the session reading them."""

from __future__ import annotations

import threading

import psycopg

from cruddur.errors import DatabaseError
from cruddur.postgres import inventory, urls
from cruddur.postgres.connect import APPLICATION_NAME


def list_while_ending_its_session(server_url: str, url: str, times: int):
    """inventory.tables(url) while its session waits on a lock on users, ended `times` times (as a
    swap's end_sessions ends it); what the call returned or raised."""
    outcome = []

    def list_tables():
        try:
            outcome.append(inventory.tables(url))
        except DatabaseError as e:
            outcome.append(e)

    with psycopg.connect(url) as holder, psycopg.connect(server_url, autocommit=True) as admin:
        holder.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")  # the listing waits here
        listing = threading.Thread(target=list_tables)
        listing.start()
        ended = set()
        while len(ended) < times and listing.is_alive():
            waiting = admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = %s AND wait_event_type = 'Lock'",
                (urls.dbname(url), APPLICATION_NAME),
            ).fetchone()
            if waiting and waiting[0] not in ended:
                admin.execute("SELECT pg_terminate_backend(%s)", waiting)
                ended.add(waiting[0])
        holder.rollback()
    listing.join(timeout=30)
    assert len(ended) == times, "the listing stopped waiting on the lock before it was ended"
    return outcome[0]


def test_a_listing_whose_session_a_swap_ends_is_read_again(server_url, seeded_url):
    tables = list_while_ending_its_session(server_url, seeded_url, times=1)
    assert {t.name: t.rows for t in tables if t.name in ("users", "activities")} == {"users": 2, "activities": 1}


def test_a_listing_ended_twice_is_one_line(server_url, seeded_url):
    failure = list_while_ending_its_session(server_url, seeded_url, times=2)
    assert isinstance(failure, DatabaseError)
    assert str(failure).startswith(f"cannot list the tables of {urls.dbname(seeded_url)!r}: terminating connection")
    assert "\n" not in str(failure)
