"""Which database a db task acts on: production, the dev URL, or the embedded local server."""

from __future__ import annotations

from dataclasses import dataclass

from . import local_server, urls
from ..config import Settings


@dataclass(frozen=True)
class Target:
    url: str = ""
    environment: str = ""  # "prod", "dev" or "local"

    @property
    def dbname(self) -> str:
        return urls.dbname(self.url)

    @property
    def prod(self) -> bool:
        return self.environment == "prod"

    def __str__(self) -> str:
        return f"{self.environment} database {urls.describe(self.url)}"

    def __repr__(self) -> str:
        return f"Target({urls.mask(self.url)!r}, {self.environment!r})"


def resolve(settings: Settings, prod: bool = False, start: bool = True) -> Target:
    """PROD_CONNECTION_URL with prod, else CONNECTION_URL, else the embedded server (started
    on demand unless start=False)."""
    if prod:
        url = settings.require("prod_connection_url")
        urls.parse(url, "PROD_CONNECTION_URL")
        return Target(url, "prod")
    if settings.connection_url:
        urls.parse(settings.connection_url, "CONNECTION_URL")
        return Target(settings.connection_url, "dev")
    server = local_server.start(settings.pgdata) if start else local_server.running_url(settings.pgdata)
    if server is None:
        return Target("", "local")
    return Target(urls.with_dbname(server, urls.DEFAULT_DBNAME), "local")
