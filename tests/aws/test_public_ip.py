import ipaddress

import pytest

from cruddur.aws.public_ip import lookup, parse_public_ipv4
from cruddur.config import Settings
from cruddur.errors import IpLookupError
from tests.aws_support import FAST_TIMEOUT, GOOD_IP, OTHER_GOOD_IP, closed_ip_service_url


def settings_for(urls: str = "", gitpod_ip: str = "") -> Settings:
    return Settings.from_env({"IP_LOOKUP_URLS": urls, "GITPOD_IP": gitpod_ip})


@pytest.mark.parametrize(
    "answer, reason",
    [
        ("", "empty"),
        ("   \n", "empty"),
        ("<html><body>203.0.113.7</body></html>", "HTML"),
        ("hello, world", "not an IP address"),
        ("203.0.113.7.1", "not an IP address"),
        ("1" * 100, "characters"),
        ("2001:db8::7", "IPv6"),
        ("::ffff:203.0.113.7", "IPv6"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.20", "private"),
        ("100.64.0.5", "private"),
        ("127.0.0.1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("0.0.0.0", "private"),
    ],
)
def test_unusable_answers_are_refused_with_the_reason(answer, reason):
    with pytest.raises(ValueError, match=reason):
        parse_public_ipv4(answer)


@pytest.mark.parametrize("answer", ["203.0.113.7", " 203.0.113.7\n", "\t8.8.8.8\r\n", "52.94.76.1"])
def test_public_ipv4_answers_are_trimmed_and_kept(answer):
    assert parse_public_ipv4(answer) == ipaddress.IPv4Address(answer.strip())


def test_gitpod_ip_wins_without_any_http_call(ip_services):
    found = lookup(settings_for(ip_services.urls("other"), gitpod_ip=GOOD_IP))
    assert (str(found), found.source, found.cidr) == (GOOD_IP, "GITPOD_IP", f"{GOOD_IP}/32")
    assert ip_services.hits == []


@pytest.mark.parametrize("bad", ["not-an-ip", "10.0.0.8", "2001:db8::1", "203.0.113.7/24"])
def test_an_invalid_gitpod_ip_is_an_error_not_a_lookup(ip_services, bad):
    with pytest.raises(IpLookupError, match="GITPOD_IP is unusable"):
        lookup(settings_for(ip_services.urls("good"), gitpod_ip=bad))
    assert ip_services.hits == []


def test_the_first_good_service_answers(ip_services):
    found = lookup(settings_for(ip_services.urls("good", "other")), timeout=FAST_TIMEOUT)
    assert (str(found), found.source) == (GOOD_IP, ip_services.url("good"))
    assert ip_services.hits == ["/good"]


def test_whitespace_around_the_answer_is_trimmed(ip_services):
    assert str(lookup(settings_for(ip_services.urls("padded")), timeout=FAST_TIMEOUT)) == GOOD_IP


@pytest.mark.parametrize("bad", ["html", "garbage", "empty", "private", "shared", "loopback", "ipv6", "any", "fail", "slow"])
def test_a_bad_slow_or_failing_service_is_skipped_for_the_next(ip_services, bad):
    found = lookup(settings_for(ip_services.urls(bad, "other")), timeout=FAST_TIMEOUT)
    assert (str(found), found.source) == (OTHER_GOOD_IP, ip_services.url("other"))
    assert ip_services.hits[-1] == "/other"


def test_an_unreachable_service_is_skipped(ip_services):
    settings = Settings.from_env({"IP_LOOKUP_URLS": f"{closed_ip_service_url()},{ip_services.url('other')}"})
    assert str(lookup(settings, timeout=FAST_TIMEOUT)) == OTHER_GOOD_IP


def test_when_every_service_fails_the_error_lists_each_reason(ip_services):
    names = ("html", "ipv6", "private", "fail", "slow", "garbage")
    with pytest.raises(IpLookupError) as caught:
        lookup(settings_for(ip_services.urls(*names)), timeout=FAST_TIMEOUT)
    message = str(caught.value)
    assert "\n" not in message
    for expected in (
        "HTML page",
        "IPv6 address (2001:db8::7)",
        "10.1.2.3 is a private address",
        "HTTP 500",
        "no answer in time",
        "not an IP address: 'hello, world'",
        "set GITPOD_IP",
    ):
        assert expected in message
    assert [hit.lstrip("/") for hit in ip_services.hits] == list(names)


def test_no_services_configured_is_an_error():
    with pytest.raises(IpLookupError, match="IP_LOOKUP_URLS"):
        lookup(Settings(ip_lookup_urls=()))


def test_a_trickling_service_cannot_hold_the_look_up_past_its_deadline(ip_services):
    """One byte a second never trips a read timeout; the look-up's own deadline ends it."""
    with pytest.raises(IpLookupError) as caught:
        lookup(settings_for(ip_services.urls("trickle", "good")), timeout=(1.0, 2.0), deadline=1.0)
    message = str(caught.value)
    assert message == (
        "could not find this workspace's public IPv4 address ("
        f"{ip_services.url('trickle')}: no whole answer within 1s; "
        f"{ip_services.url('good')}: not asked, the 1s were up); set GITPOD_IP"
    )
    assert ip_services.hits == ["/trickle"]


def test_a_trickling_service_is_given_up_for_the_next_one(ip_services):
    found = lookup(settings_for(ip_services.urls("trickle", "other")), timeout=(0.5, 0.5), deadline=30)
    assert (str(found), found.source) == (OTHER_GOOD_IP, ip_services.url("other"))
    assert ip_services.hits == ["/trickle", "/other"]
