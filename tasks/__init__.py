"""Invoke's root namespace: one collection per system, each built from its task modules."""

import sys

try:
    from invoke import Collection

    from . import activities, cognito, db, lambda_, migrations, rds, sg, slow
    from ._cli import quiet_broken_pipes
except KeyboardInterrupt:
    # Ctrl-C while `inv` loads the tasks: invoke would end with exit code 1 and no word. Say it
    # as a task does.
    print("interrupted", file=sys.stderr)
    raise SystemExit(130) from None


quiet_broken_pipes()


def _merged(*modules) -> Collection:
    """One collection holding the tasks of several modules (one module per job, one `inv` prefix)."""
    merged = Collection()
    for module in modules:
        for task in Collection.from_module(module).tasks.values():
            merged.add_task(task)
    return merged


ns = Collection()
ns.add_collection(_merged(db, activities, migrations, slow), name="db")
ns.add_collection(rds)
ns.add_collection(sg)
ns.add_collection(lambda_, name="lambda")
ns.add_collection(cognito)
