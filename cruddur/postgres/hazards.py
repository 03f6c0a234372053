"""What makes a migration statement dangerous on a live table, judged from what it was seen to do.

The migration plan traces each statement on a copy of the target's schema and records, for the
relations that exist on the target (a table the migration creates is empty and seen by no one):
the strongest lock held on each while the statement ran, the tables it scanned and the ones it
rewrote. A hazard is a rewrite, or a scan while holding a lock that blocks writes (ShareLock or
stronger); the statement's words only name which one, and the safe recipe to use instead. So
the safe forms are never flagged because they do none of that: CONCURRENTLY, a nullable column,
a constant default, NOT VALID then VALIDATE CONSTRAINT (which scans under a lock that lets
writes through), SET NOT NULL leaning on a validated CHECK (col IS NOT NULL).

A migration acknowledges a hazard with a comment line in its section (dbmate ignores comments):
`-- cruddur:allow RULE reason`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# pg_locks' modes, weakest first; ShareLock and the ones after it block writes (ROW EXCLUSIVE).
LOCK_MODES = (
    "AccessShareLock",
    "RowShareLock",
    "RowExclusiveLock",
    "ShareUpdateExclusiveLock",
    "ShareLock",
    "ShareRowExclusiveLock",
    "ExclusiveLock",
    "AccessExclusiveLock",
)
BLOCKS_WRITES = LOCK_MODES.index("ShareLock")

INDEX = "index-without-concurrently"
TYPE_CHANGE = "type-change-rewrite"
FOREIGN_KEY = "foreign-key-without-not-valid"
CHECK = "check-without-not-valid"
SET_NOT_NULL = "set-not-null-without-check"
VOLATILE_DEFAULT = "volatile-default-rewrite"
REWRITE = "rewrite-under-lock"
SCAN = "scan-under-lock"
RULES = (INDEX, TYPE_CHANGE, FOREIGN_KEY, CHECK, SET_NOT_NULL, VOLATILE_DEFAULT, REWRITE, SCAN)

_SEPARATE = "in a later migration (its own transaction)"
INSTEAD = {
    INDEX: "CREATE INDEX CONCURRENTLY (or REINDEX ... CONCURRENTLY), alone in a migration whose section is marked"
    " '-- migrate:up transaction:false': writes go on while it builds",
    TYPE_CHANGE: "add a column of the new type, backfill it in batches, move the app to it, then drop the old one"
    " (or a change that needs no rewrite: varchar(n) to a longer varchar, or to text)",
    FOREIGN_KEY: f"ADD CONSTRAINT ... FOREIGN KEY ... NOT VALID, then ALTER TABLE ... VALIDATE CONSTRAINT {_SEPARATE}:"
    " it checks the rows under ShareUpdateExclusiveLock, which lets writes through",
    CHECK: f"ADD CONSTRAINT ... CHECK (...) NOT VALID, then ALTER TABLE ... VALIDATE CONSTRAINT {_SEPARATE}:"
    " it checks the rows under ShareUpdateExclusiveLock, which lets writes through",
    SET_NOT_NULL: "ADD CONSTRAINT name CHECK (col IS NOT NULL) NOT VALID; VALIDATE CONSTRAINT name in a later migration;"
    " then SET NOT NULL, which uses the validated CHECK instead of scanning, and DROP CONSTRAINT name",
    VOLATILE_DEFAULT: "add the column with no default (or a constant one), then ALTER COLUMN ... SET DEFAULT for new rows,"
    " and fill the existing rows in batches",
    REWRITE: "build the new shape beside the old one (a new column or table filled in batches) and switch over,"
    " or acknowledge it for a maintenance window",
    SCAN: "a form that checks rows without blocking writes (NOT VALID then VALIDATE CONSTRAINT; CREATE UNIQUE INDEX"
    " CONCURRENTLY then ADD CONSTRAINT ... USING INDEX), each in a migration of its own",
}
_EARLIER_LOCK = (
    "move it to a migration of its own (or a transaction:false section), so that it does not run under the lock"
    " an earlier statement of this migration holds until the commit"
)


@dataclass(frozen=True)
class Hazard:
    rule: str
    relation: str
    message: str
    instead: str
    allowed: str | None = None  # the reason given by a `-- cruddur:allow RULE reason` line


@dataclass
class Observed:
    """What tracing saw one statement do to relations that exist on the target."""

    held: dict[str, str] = field(default_factory=dict)  # table -> strongest lock mode held while it ran
    taken: dict[str, str] = field(default_factory=dict)  # table -> lock mode this statement itself took
    scanned: set[str] = field(default_factory=set)  # tables it read through
    rewritten: set[str] = field(default_factory=set)  # tables it rewrote (a new relfilenode)


# An E'' string first: a backslash escapes its quote there (E'it\'s'), and its E is part of it.
_QUOTED = re.compile(
    r"(?<![\w$])[Ee]'(?:[^'\\]|\\.|'')*'|'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\$([A-Za-z_]\w*)?\$.*?\$\1\$|--[^\n]*|/\*.*?\*/", re.S
)


def words(statement: str) -> str:
    """The statement in upper case with strings, quoted names and comments blanked, one space
    between words: what the rules match on."""
    return " ".join(_QUOTED.sub(" _ ", statement).upper().split())


def find(statement: str, seen: Observed) -> list[Hazard]:
    """The hazards of one statement, given what it was seen to do (one per relation at most)."""
    text = words(statement)
    if text.startswith("TRUNCATE"):
        return []  # a new, empty file: no rows are read or copied
    found = []
    for relation in sorted(seen.rewritten):
        mode = seen.held.get(relation, "AccessExclusiveLock")
        if re.search(r"\bALTER (COLUMN )?\S+ (SET DATA )?TYPE\b", text):
            found.append(_hazard(TYPE_CHANGE, relation, f"the type change rewrites {relation} and its indexes under {mode}"))
        elif re.search(r"\bADD\b", text) and re.search(r"\bDEFAULT\b|\bGENERATED\b|\bSERIAL\b|\bBIGSERIAL\b", text):
            found.append(
                _hazard(
                    VOLATILE_DEFAULT,
                    relation,
                    f"the new column's value is computed for each row (a volatile default), so adding it rewrites {relation} under {mode}",
                )
            )
        else:
            found.append(_hazard(REWRITE, relation, f"rewrites {relation} and its indexes under {mode}"))
    for relation in sorted(seen.scanned - seen.rewritten):
        mode = seen.held.get(relation)
        if mode is None or LOCK_MODES.index(mode) < BLOCKS_WRITES:
            continue
        blocked = "every read and write waits" if mode == "AccessExclusiveLock" else "every write waits"
        earlier = LOCK_MODES.index(seen.taken.get(relation, "AccessShareLock")) < LOCK_MODES.index(mode)
        if re.match(r"(CREATE (UNIQUE )?INDEX|REINDEX)\b", text):
            found.append(_hazard(INDEX, relation, f"builds the index while holding {mode} on {relation}: {blocked} until it ends"))
        elif re.search(r"\bFOREIGN KEY\b|\bREFERENCES\b", text) and "NOT VALID" not in text:
            found.append(
                _hazard(FOREIGN_KEY, relation, f"checks every row of {relation} for the new foreign key while holding {mode}: {blocked}")
            )
        elif re.search(r"\bADD\b.*\bCHECK\b", text) and "NOT VALID" not in text:
            found.append(_hazard(CHECK, relation, f"checks every row of {relation} for the new CHECK while holding {mode}: {blocked}"))
        elif re.search(r"\bSET NOT NULL\b", text):
            found.append(
                _hazard(
                    SET_NOT_NULL,
                    relation,
                    f"reads all of {relation} under {mode} to prove no NULL (no validated CHECK (col IS NOT NULL) to lean on): {blocked}",
                )
            )
        elif earlier:
            found.append(
                _hazard(
                    SCAN,
                    relation,
                    f"reads all of {relation} while this migration holds {mode} on it from an earlier statement: {blocked}",
                    _EARLIER_LOCK,
                )
            )
        else:
            found.append(_hazard(SCAN, relation, f"reads all of {relation} while holding {mode}: {blocked}"))
    return found


def _hazard(rule: str, relation: str, message: str, instead: str | None = None) -> Hazard:
    return Hazard(rule, relation, message, instead or INSTEAD[rule])


_ALLOW = re.compile(r"^[ \t]*--[ \t]*cruddur:allow[ \t]+(\S+)[ \t]+(.*)$", re.MULTILINE)


def allowances(section_sql: str) -> dict[str, str]:
    """The rules a section acknowledges, each with its reason (a line without one acknowledges nothing)."""
    found = {match.group(1): match.group(2).strip() for match in _ALLOW.finditer(section_sql)}
    return {rule: reason for rule, reason in found.items() if reason}


def acknowledge(found: list[Hazard], allowed: dict[str, str]) -> list[Hazard]:
    """The hazards, each acknowledged one carrying its reason."""
    return [Hazard(h.rule, h.relation, h.message, h.instead, allowed.get(h.rule)) for h in found]
