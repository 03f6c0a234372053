"""Connection URLs: parsed with psycopg.conninfo, shown only with the password masked."""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from psycopg import ProgrammingError, conninfo

from ..errors import MASK, ConfigError, hide_quoted, one_line

DEFAULT_DBNAME = "cruddur"
EXPECTED = "expected postgresql://user:password@host:5432/cruddur"


def parse(url: str, variable: str = "the connection URL") -> dict[str, str]:
    """The URL's parts as libpq keywords; ConfigError (without the URL's secrets) if malformed."""
    if "://" in url:
        try:
            netloc = urlsplit(url).netloc
        except ValueError as e:  # e.g. an unclosed [ of an IPv6 host
            raise ConfigError(f"{variable} is malformed: {e} ({EXPECTED})") from None
        if netloc.count("@") > 1:
            raise ConfigError(f"{variable} is malformed: write an '@' in the user or password as %40 ({EXPECTED})")
    try:
        params = conninfo.conninfo_to_dict(url)
    except ProgrammingError as e:
        # libpq quotes the offending part of the URL, which may hold the password: keep only
        # quoted punctuation such as "=".
        reason = hide_quoted(one_line(e))
        raise ConfigError(f"{variable} is malformed: {reason} ({EXPECTED})") from None
    for port in (params.get("port") or "5432").split(","):
        if not port.isdigit():
            raise ConfigError(f"{variable} is malformed: port {port!r} is not a number ({EXPECTED})")
    return params


def dbname(url: str) -> str:
    return parse(url).get("dbname") or DEFAULT_DBNAME


def with_dbname(url: str, name: str) -> str:
    """The same server, user and options, another database (a URL stays a URL)."""
    if "://" in url:
        parts = urlsplit(url)
        query = parts.query
        if "dbname" in _query(parts.query):  # libpq lets ?dbname= override the path
            query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "dbname"], safe="/")
        return urlunsplit(parts._replace(path="/" + quote(name, safe=""), query=query))
    return conninfo.make_conninfo(url, dbname=name)


def _query(query: str) -> dict[str, str]:
    return dict(parse_qsl(query))


def mask(url: str) -> str:
    """The URL as given, with its password replaced by ****."""
    if "://" not in url:
        params = parse(url)
        if "password" in params:
            params["password"] = MASK
        return conninfo.make_conninfo(**params)
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    if "password" in _query(parts.query):
        query = [(k, MASK if k == "password" else v) for k, v in parse_qsl(parts.query)]
        parts = parts._replace(query=urlencode(query, safe="/*"))
    if parts.password is None:
        return urlunsplit(parts)
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    userinfo = f"{user}:{MASK}" if parts.password else user
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{hostinfo}"))


def describe(url: str) -> str:
    """Where a URL points, for messages: user@host:port/dbname, never the password."""
    params = parse(url)
    host = params.get("host") or "localhost"
    where = f"{host}:{params['port']}" if params.get("port") else host
    user = params.get("user")
    return f"{user + '@' if user else ''}{where}/{params.get('dbname') or DEFAULT_DBNAME}"
