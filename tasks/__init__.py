"""Invoke's root namespace: one collection per system, each built from its task modules."""

from invoke import Collection

from . import activities, cognito, db, lambda_, migrations, rds, roles, sg


def _merged(*modules) -> Collection:
    """One collection holding the tasks of several modules (one module per job, one `inv` prefix)."""
    merged = Collection()
    for module in modules:
        for task in Collection.from_module(module).tasks.values():
            merged.add_task(task)
    return merged


ns = Collection()
ns.add_collection(_merged(db, activities, migrations, roles), name="db")
ns.add_collection(rds)
ns.add_collection(sg)
ns.add_collection(lambda_, name="lambda")
ns.add_collection(cognito)
