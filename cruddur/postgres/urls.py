"""Connection URLs: read by libpq's own parser (psycopg.conninfo), shown only with the password masked.

A URL is never split by hand: libpq decides what is user, password, host and database. Every URL
the library writes is built by `build` from libpq keywords (those libpq read, or the caller's), so
a password may hold any character libpq accepts (`#`, `?`, `[`, ...) and no message quotes any
part of it.
"""

from __future__ import annotations

from urllib.parse import quote

from psycopg import ProgrammingError, conninfo

from ..errors import MASK, ConfigError, hide_quoted, one_line

DEFAULT_DBNAME = "cruddur"
EXPECTED = "expected postgresql://user:password@host:5432/cruddur"
SCHEMES = ("postgresql://", "postgres://")


def is_url(text: str) -> bool:
    """Whether the connection string is a URL (else libpq's key=value form)."""
    return text.startswith(SCHEMES)


def parse(url: str, variable: str = "the connection URL") -> dict[str, str]:
    """The URL's parts as libpq keywords; ConfigError (without the URL's secrets) if malformed."""
    if is_url(url):
        _refuse_misread_credentials(url, variable)
    try:
        params = conninfo.conninfo_to_dict(url)
    except ProgrammingError as e:
        raise ConfigError(f"{variable} is malformed: {hide_quoted(one_line(e))} ({EXPECTED})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{variable} is malformed: a percent-encoded part is not UTF-8 text ({EXPECTED})") from None
    for port in (params.get("port") or "5432").split(","):
        if not port.isdigit():
            # The port is not quoted: a password with a raw "/" ends up here.
            raise ConfigError(f"{variable} is malformed: the port is not a number ({EXPECTED})")
    return params


def _refuse_misread_credentials(url: str, variable: str) -> None:
    # libpq reads user:password up to the first "@", and only when no "/" comes before it. A raw
    # "/" or "@" in a password is therefore read as host, port or database name, which messages
    # would then print: refuse such a URL before anything is shown.
    rest = url.split("://", 1)[1]
    at = rest.find("@")
    if at < 0:
        return
    if "/" in rest[:at] or "@" in rest[at + 1 :]:
        raise ConfigError(f"{variable} is malformed: write a '/' in the user or password as %2F and an '@' as %40 ({EXPECTED})")


def dbname(url: str) -> str:
    return parse(url).get("dbname") or DEFAULT_DBNAME


def with_dbname(url: str, name: str) -> str:
    """The same server, user and options, another database (a URL stays a URL)."""
    params = parse(url)
    params["dbname"] = name
    return build(params) if is_url(url) else conninfo.make_conninfo(**params)


def mask(url: str) -> str:
    """The URL with its password replaced by ****; only **** when libpq cannot read it."""
    try:
        params = parse(url)
    except ConfigError:
        return MASK
    if params.get("password"):
        params["password"] = MASK
    else:
        params.pop("password", None)
    return build(params, keep=MASK) if is_url(url) else conninfo.make_conninfo(**params)


def describe(url: str) -> str:
    """Where a URL points, for messages: user@host:port/dbname, never the password."""
    params = parse(url)
    host = params.get("host") or "localhost"
    where = f"{host}:{params['port']}" if params.get("port") else host
    user = params.get("user")
    return f"{user + '@' if user else ''}{where}/{params.get('dbname') or DEFAULT_DBNAME}"


def password_spellings(url: str) -> set[str]:
    """Every way the URL's password may appear in text another system echoes: as libpq reads
    it, as written in the URL, and percent-encoded. Empty when there is none or it cannot be read."""
    try:
        password = parse(url).get("password")
    except ConfigError:
        return set()
    if not password:
        return set()
    spellings = {password, quote(password, safe=""), quote(password)}
    if is_url(url):
        rest = url.split("://", 1)[1]
        userinfo = rest[: rest.find("@")] if "@" in rest else ""
        if ":" in userinfo:
            spellings.add(userinfo.split(":", 1)[1])
        for pair in rest.partition("?")[2].split("&"):
            key, _, value = pair.partition("=")
            if key == "password":
                spellings.add(value)
    return spellings - {""}


def build(params: dict[str, str], keep: str = "") -> str:
    """The postgresql:// URL for libpq keywords (user, password, host, port, dbname, options...),
    each part percent-encoded; a value equal to `keep` (the mask) is left as written."""

    def encoded(value: str, safe: str = "") -> str:
        return value if value == keep else quote(value, safe=safe)

    params = dict(params)
    user, password = params.pop("user", ""), params.pop("password", "")
    userinfo = encoded(user) + (":" + encoded(password) if password else "")
    netloc = ""
    hosts = params.get("host", "")
    # A socket folder (or an empty entry) cannot be written as a URL host: it stays an option.
    if hosts and not any(h == "" or h.startswith("/") for h in hosts.split(",")):
        params.pop("host")
        ports = params.pop("port", "").split(",")
        entries = []
        for i, host in enumerate(hosts.split(",")):
            host = f"[{quote(host, safe=':')}]" if ":" in host else quote(host, safe="")
            port = ports[i] if i < len(ports) else ports[-1]
            entries.append(f"{host}:{port}" if port else host)
        netloc = ",".join(entries)
    dbname = params.pop("dbname", "")
    query = "&".join(f"{quote(key, safe='')}={encoded(value, safe='/:,')}" for key, value in params.items())
    return f"postgresql://{userinfo + '@' if userinfo else ''}{netloc}/{quote(dbname, safe='')}" + (f"?{query}" if query else "")
