"""Which database a db task acts on: production, the dev URL, or the embedded local server.

This is the one place that decides; tasks ask it rather than reading the settings themselves."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ..config import Settings
from . import local_server, urls


class Environment(Enum):
    PROD = "prod"  # PROD_CONNECTION_URL, with --prod
    DEV = "dev"  # CONNECTION_URL
    LOCAL = "local"  # the embedded server, with neither

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Target:
    url: str
    environment: Environment
    started_server: bool = False  # this call started the embedded server (it keeps running)

    @property
    def dbname(self) -> str:
        return urls.dbname(self.url)

    @property
    def prod(self) -> bool:
        return self.environment is Environment.PROD

    @property
    def local(self) -> bool:
        return self.environment is Environment.LOCAL

    def __str__(self) -> str:
        return f"{self.environment} database {urls.describe(self.url)}"

    def __repr__(self) -> str:
        return f"Target({urls.mask(self.url)!r}, {self.environment.value!r})"


def environment(settings: Settings, prod: bool = False) -> Environment:
    """Which database a task with `prod` would use, without starting or checking anything."""
    if prod:
        return Environment.PROD
    return Environment.DEV if settings.connection_url else Environment.LOCAL


def resolve(settings: Settings, prod: bool = False) -> Target:
    """PROD_CONNECTION_URL with prod, else CONNECTION_URL, else the embedded server, started on
    demand. A missing or malformed variable is a ConfigError naming it."""
    chosen = environment(settings, prod)
    if chosen is Environment.PROD:
        url = settings.require("prod_connection_url")
        urls.parse(url, "PROD_CONNECTION_URL")
        return Target(url, chosen)
    if chosen is Environment.DEV:
        urls.parse(settings.connection_url, "CONNECTION_URL")
        return Target(settings.connection_url, chosen)
    server, started = local_server.ensure_running(settings.pgdata, settings.local_port())
    return Target(urls.with_dbname(server, urls.DEFAULT_DBNAME), chosen, started)
