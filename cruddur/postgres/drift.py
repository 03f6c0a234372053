"""Drift: where a database's schema differs from what sql/schema.sql plus its applied migrations build.

The reference is built in a scratch database on the target's own server and dropped afterwards;
the target is only read. Both are described object by object in terms that mean the same on
PostgreSQL 14 to 18 (types as format_type prints them, definitions as pg_get_*def prints them with
an empty search_path so every name is schema-qualified, whitespace folded), leaving out what
differs between versions without meaning anything (object ids, attribute numbers, PostgreSQL 18's
catalogued NOT NULL constraints, which a column's nullability already says), the objects that
extensions own, and the runner's own tables (public.schema_migrations, and
public.cruddur_migration_runs, left behind by any run of a transaction:false section).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psycopg

from ..errors import CruddurError, DatabaseError, one_line
from ..timeouts import CATALOG_READ_LOCK_TIMEOUT
from . import migrations
from .connect import connect, set_lock_timeout
from .scratch import scratch_database

_BOOKKEEPING = {"public.schema_migrations", "public.cruddur_migration_runs"}


@dataclass(frozen=True)
class Difference:
    kind: str  # table, column, index, constraint, view, function, trigger, sequence, extension, ...
    name: str
    what: str  # "missing on the target", "only on the target", or what differs

    def __str__(self) -> str:
        return f"{self.kind} {self.name}: {self.what}"


@dataclass(frozen=True)
class Drift:
    differences: list[Difference]
    notes: list[str]  # what the reference could not include (an applied migration without its file)


def check(url: str, schema: tuple[Path, str], directory: Path) -> Drift:
    """Compare the URL's schema with what `schema` (path, label) plus the migrations applied there build."""
    files, applied = migrations.inspect(url, directory)
    by_version = {m.version: m for m in files}
    notes = [f"{version} is applied but has no file in {directory.name}/: its changes are not in the reference" for version in applied]
    notes = [note for version, note in zip(applied, notes) if version not in by_version]
    notes += [
        f"{m.label} changed after it was applied: the reference uses the file as it is now"
        for m in migrations.changed_files(files, applied)
    ]
    target = describe(url)
    with scratch_database(url, "drift") as scratch_url, tempfile.TemporaryDirectory(prefix="cruddur-drift-") as folder:
        # The applied files alone, in a folder named as the real one, so messages name them as usual.
        copies = Path(folder) / directory.parent.name / directory.name
        copies.mkdir(parents=True)
        for version in applied:
            if version in by_version:
                source = directory / by_version[version].label.rsplit("/", 1)[-1]
                shutil.copyfile(source, copies / source.name)
        try:
            migrations.load_schema(scratch_url, *schema)  # as db.schema-load: no version recorded yet
            migrations.migrate(scratch_url, copies, allow_out_of_order=True, label_root=Path(folder))
        except CruddurError as e:
            raise DatabaseError(f"cannot build the reference schema in a scratch database ({e}); the target was only read") from None
        reference = describe(scratch_url)
    return Drift(compare(target, reference), notes)


def compare(target: dict[tuple[str, str], str], reference: dict[tuple[str, str], str]) -> list[Difference]:
    """Each object missing on the target, found only on the target, or defined otherwise there."""
    found = []
    for key in sorted(target.keys() | reference.keys()):
        kind, name = key
        if key not in target:
            found.append(Difference(kind, name, "missing on the target (the migrations build it)"))
        elif key not in reference:
            found.append(Difference(kind, name, f"only on the target ({target[key]})" if target[key] else "only on the target"))
        elif target[key] != reference[key]:
            found.append(Difference(kind, name, f"differs: the target has {target[key]!r}, the migrations build {reference[key]!r}"))
    return found


_NOT_EXTENSION_MEMBER = """NOT EXISTS (
  SELECT 1 FROM pg_depend d WHERE d.classid = {catalog}::regclass AND d.objid = {oid} AND d.deptype = 'e')"""
_USER_SCHEMA = "{n}.nspname NOT IN ('pg_catalog', 'information_schema') AND {n}.nspname !~ '^pg_(toast|temp)'"


def _user(n: str, catalog: str, oid: str) -> str:
    return _USER_SCHEMA.format(n=n) + " AND " + _NOT_EXTENSION_MEMBER.format(catalog=catalog, oid=oid)


# Each row: kind, name, definition, the table it belongs to (to leave out the runner's own).
_DESCRIBE = f"""
SELECT 'extension', e.extname, '', '' FROM pg_extension e
UNION ALL
SELECT 'schema', n.nspname, '', '' FROM pg_namespace n WHERE {_USER_SCHEMA.format(n="n")}
UNION ALL
SELECT CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' ELSE 'table' END,
       c.oid::regclass::text,
       CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid)
            ELSE concat_ws(' ', CASE c.relpersistence WHEN 'u' THEN 'unlogged' END, CASE c.relkind WHEN 'p' THEN 'partitioned' END) END,
       c.oid::regclass::text
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm') AND {_user("n", "'pg_class'", "c.oid")}
UNION ALL
SELECT 'column', c.oid::regclass::text || '.' || quote_ident(a.attname),
       concat_ws(' ', format_type(a.atttypid, a.atttypmod),
                 CASE WHEN a.attnotnull THEN 'not null' END,
                 CASE WHEN a.attgenerated = 's' THEN 'generated always as ' || pg_get_expr(d.adbin, d.adrelid) || ' stored'
                      WHEN d.adbin IS NOT NULL THEN 'default ' || pg_get_expr(d.adbin, d.adrelid) END,
                 CASE a.attidentity WHEN 'a' THEN 'generated always as identity' WHEN 'd' THEN 'generated by default as identity' END,
                 CASE WHEN a.attcollation <> t.typcollation THEN 'collate ' || co.collname END),
       c.oid::regclass::text
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
LEFT JOIN pg_collation co ON co.oid = a.attcollation
WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm') AND {_user("n", "'pg_class'", "c.oid")}
UNION ALL
SELECT 'index', i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid), i.indrelid::regclass::text
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE {_user("n", "'pg_class'", "i.indrelid")}
UNION ALL
SELECT 'constraint', coalesce(r.oid::regclass::text, format_type(co.contypid, NULL)) || '.' || quote_ident(co.conname),
       pg_get_constraintdef(co.oid), coalesce(r.oid::regclass::text, '')
FROM pg_constraint co JOIN pg_namespace n ON n.oid = co.connamespace LEFT JOIN pg_class r ON r.oid = co.conrelid AND co.conrelid <> 0
WHERE co.contype <> 'n' AND {_user("n", "'pg_constraint'", "co.oid")}
UNION ALL
SELECT CASE p.prokind WHEN 'p' THEN 'procedure' ELSE 'function' END,
       p.oid::regproc::text || '(' || pg_get_function_identity_arguments(p.oid) || ')', pg_get_functiondef(p.oid), ''
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE p.prokind IN ('f', 'p') AND {_user("n", "'pg_proc'", "p.oid")}
UNION ALL
SELECT 'trigger', t.tgrelid::regclass::text || '.' || quote_ident(t.tgname), pg_get_triggerdef(t.oid), t.tgrelid::regclass::text
FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE NOT t.tgisinternal AND {_user("n", "'pg_class'", "c.oid")}
UNION ALL
SELECT 'sequence', s.seqrelid::regclass::text,
       format('%s start %s increment %s min %s max %s cache %s%s', format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement,
              s.seqmin, s.seqmax, s.seqcache, CASE WHEN s.seqcycle THEN ' cycle' ELSE '' END),
       coalesce((SELECT d.refobjid::regclass::text FROM pg_depend d
                 WHERE d.classid = 'pg_class'::regclass AND d.objid = s.seqrelid AND d.refclassid = 'pg_class'::regclass
                   AND d.deptype IN ('a', 'i') LIMIT 1), '')
FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE {_user("n", "'pg_class'", "c.oid")}
UNION ALL
SELECT 'type', t.oid::regtype::text,
       CASE t.typtype WHEN 'e' THEN 'enum (' || (SELECT string_agg(quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder)
                                                  FROM pg_enum e WHERE e.enumtypid = t.oid) || ')'
                      WHEN 'd' THEN 'domain over ' || format_type(t.typbasetype, t.typtypmod) END,
       ''
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE t.typtype IN ('e', 'd') AND {_user("n", "'pg_type'", "t.oid")}
"""


def describe(url: str) -> dict[tuple[str, str], str]:
    """The URL's schema, object by object: (kind, qualified name) -> definition, read in a
    read-only transaction."""
    with connect(url) as conn:
        try:
            conn.execute("SET TRANSACTION READ ONLY")
            set_lock_timeout(conn, CATALOG_READ_LOCK_TIMEOUT, local=True)
            # An empty search_path: every name in a definition comes out schema-qualified, the same on both sides.
            conn.execute("SELECT set_config('search_path', '', true)")
            rows = conn.execute(_DESCRIBE).fetchall()
        except psycopg.Error as e:
            raise DatabaseError(f"cannot read the schema of {conn.info.dbname!r}: {one_line(e)}") from None
    return {(kind, name): " ".join((definition or "").split()) for kind, name, definition, owner in rows if owner not in _BOOKKEEPING}
