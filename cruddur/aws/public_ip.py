"""This workspace's public IPv4 address: GITPOD_IP, or the first echo service that answers well.

requests is imported only when a service has to be asked.
"""

from __future__ import annotations

import ipaddress
import queue
import threading
from dataclasses import dataclass

from ..config import Settings
from ..errors import IpLookupError
from ..polling import Deadline
from ..timeouts import IP_LOOKUP_DEADLINE, IP_LOOKUP_REQUEST_TIMEOUT

# (connect, read) seconds per service: a slow service costs little before the next one is tried.
# The whole look-up, all services together.
LONGEST_ANSWER = 64  # "255.255.255.255\n" is 16; anything much longer is a page, not an address

# Networks no workspace is reachable from. ipaddress's is_private would also refuse the
# documentation ranges (TEST-NET, e.g. 203.0.113.0/24) that examples and tests use; no echo
# service answers with those, so they pass.
UNROUTABLE = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
    )
)


@dataclass(frozen=True)
class PublicIp:
    address: ipaddress.IPv4Address
    source: str  # "GITPOD_IP" or the URL that answered

    @property
    def cidr(self) -> str:
        return f"{self.address}/32"

    def __str__(self) -> str:
        return str(self.address)


def parse_public_ipv4(answer: str) -> ipaddress.IPv4Address:
    """The address in a service's answer, or ValueError saying (in a few words) what is wrong with it."""
    text = answer.strip()
    if not text:
        raise ValueError("an empty answer")
    if "<" in text:
        raise ValueError("an HTML page, not an address")
    if len(text) > LONGEST_ANSWER:
        raise ValueError(f"{len(text)} characters, not an address")
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"not an IP address: {text!r}") from None
    if address.version == 6:
        raise ValueError(f"an IPv6 address ({address}); the rule takes IPv4 only")
    reason = _unroutable(address)
    if reason:
        raise ValueError(f"{address} is {reason}, not a public address")
    return address


def _unroutable(address: ipaddress.IPv4Address) -> str | None:
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_reserved or address == ipaddress.IPv4Address("255.255.255.255"):
        return "a reserved address"
    if any(address in network for network in UNROUTABLE):
        return "a private address"
    return None


def lookup(
    settings: Settings,
    timeout: float | tuple[float, float] = IP_LOOKUP_REQUEST_TIMEOUT,
    deadline: float = IP_LOOKUP_DEADLINE,
) -> PublicIp:
    """GITPOD_IP when set (no HTTP call), else the first service in IP_LOOKUP_URLS with a good answer.

    `timeout` bounds each service's connect and each read; `deadline` (seconds) bounds the whole
    look-up, however slowly a service trickles its answer."""
    if settings.gitpod_ip:
        try:
            return PublicIp(parse_public_ipv4(settings.gitpod_ip), "GITPOD_IP")
        except ValueError as e:
            raise IpLookupError(f"GITPOD_IP is unusable: {e} (unset it to look the address up)") from None
    if not settings.ip_lookup_urls:
        raise IpLookupError("IP_LOOKUP_URLS lists no service; set it or GITPOD_IP")
    return _ask_services(settings.ip_lookup_urls, timeout, deadline)


def _ask_services(urls: tuple[str, ...], timeout, deadline: float) -> PublicIp:
    # requests' timeouts bound each socket operation, not a whole answer: a service that sends a
    # byte a second never trips them. Each service is asked from a daemon thread instead, and
    # abandoned (it ends with the process) when the look-up's time is up.
    ends = Deadline(deadline)
    failures = []
    for url in urls:
        remaining = ends.left()
        if remaining <= 0:
            failures.append(f"{url}: not asked, the {deadline:g}s were up")
            continue
        budget = min(remaining, _per_service(timeout))
        answers: queue.SimpleQueue = queue.SimpleQueue()

        # Bound now: a late answer from this service must not land in the next service's queue.
        def ask(url=url, answers=answers):
            try:
                answers.put(_ask(url, timeout))
            except BaseException as bug:  # handed to the caller, traceback and all
                answers.put(bug)

        threading.Thread(target=ask, daemon=True).start()
        try:
            answer = answers.get(timeout=budget)
        except queue.Empty:
            failures.append(f"{url}: no whole answer within {budget:.3g}s")
            continue
        if isinstance(answer, BaseException):
            raise answer
        found, failure = answer
        if found:
            return found
        failures.append(failure)
    raise IpLookupError("could not find this workspace's public IPv4 address (" + "; ".join(failures) + "); set GITPOD_IP")


def _per_service(timeout) -> float:
    """The most one service may take: its connect and read timeouts together."""
    return sum(timeout) if isinstance(timeout, tuple) else 2 * timeout


def _ask(url: str, timeout) -> tuple[PublicIp | None, str | None]:
    """One service's address, or why not."""
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    with requests.Session() as session:
        # One quick retry of a refused or reset connection; a slow or failing service is not
        # asked twice: the next one is.
        adapter = HTTPAdapter(max_retries=Retry(total=1, connect=1, read=False, status=0, other=0, backoff_factor=0))
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        try:
            response = session.get(url, timeout=timeout, headers={"Accept": "text/plain"})
            response.raise_for_status()
            return PublicIp(parse_public_ipv4(response.text), url), None
        except requests.Timeout:
            return None, f"{url}: no answer in time"
        except requests.HTTPError as e:
            return None, f"{url}: HTTP {e.response.status_code}"
        except requests.RequestException as e:
            return None, f"{url}: {type(e).__name__}"
        except ValueError as e:
            return None, f"{url}: {e}"
