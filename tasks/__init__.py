"""Invoke's root namespace: one collection per module, nothing else."""

from invoke import Collection

from . import db, lambda_, rds, sg

ns = Collection()
ns.add_collection(db)
ns.add_collection(rds)
ns.add_collection(sg)
ns.add_collection(lambda_, name="lambda")
