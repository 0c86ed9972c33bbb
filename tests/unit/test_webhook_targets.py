"""The webhook target policy's address table: which hosts a webhook may name and reach."""

from __future__ import annotations

import ipaddress

import pytest

from securekey.services.webhooks import is_public_address, literal_address

#: Every way the outside review (and the usual SSRF lists) spell a non-public address.
PRIVATE_HOSTS = [
    "127.0.0.1",
    "127.0.0.2",
    "::1",
    "0x7f000001",
    "2130706433",
    "0177.0.0.1",
    "127.1",
    "0.0.0.0",  # noqa: S104 - a target under test, not a bind address
    "0",
    "169.254.169.254",
    "10.0.0.1",
    "172.16.0.1",
    "172.31.255.254",
    "192.168.1.1",
    "100.64.0.1",
    "224.0.0.1",
    "fc00::1",
    "fd12:3456::1",
    "fe80::1",
    "::",
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    "2002:7f00:1::1",
    "64:ff9b::a00:1",
    "127.0.0.1.",
]


@pytest.mark.parametrize("host", PRIVATE_HOSTS)
def test_private_spellings_are_read_as_the_addresses_resolvers_see(host: str) -> None:
    """Each spelling is read as a literal address, and that address is not public."""
    address = literal_address(host)
    assert address is not None, host
    assert not is_public_address(address), (host, address)


@pytest.mark.parametrize("host", ["8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_are_allowed(host: str) -> None:
    """Globally routable unicast addresses (IPv4-mapped ones too) pass the check."""
    address = literal_address(host)
    assert address is not None
    assert is_public_address(address)


@pytest.mark.parametrize("host", ["hooks.example.com", "deadbeef", "1e100.net", "a.b"])
def test_names_are_not_literals(host: str) -> None:
    """A DNS name is no literal address: it is checked when it is resolved, at delivery."""
    assert literal_address(host) is None


def test_the_legacy_forms_match_the_resolver() -> None:
    """``0x7f000001`` and friends mean 127.0.0.1, as ``inet_aton`` (and so curl) reads them."""
    loopback = ipaddress.IPv4Address("127.0.0.1")
    assert {literal_address(h) for h in ("0x7f000001", "2130706433", "0177.0.0.1")} == {loopback}
