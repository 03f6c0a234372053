"""Cruddur's Postgres and AWS library.

The Flask backend imports the client from here; the `inv` tasks are a thin layer over it.
Nothing in this package imports invoke or rich.
"""
