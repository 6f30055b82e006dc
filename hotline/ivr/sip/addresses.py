"""Addresses taken from the wire, checked before anything is sent to them; who may call; names resolved off the loop.

A UDP sendto to a port above 65535, a name with a NUL or an address of the
wrong family raises inside asyncio's transport, which then closes the socket
for good: so every destination is checked here first, and only IP literals
ever reach a socket (a host name in sendto would be resolved, blocking, on
the event loop).
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import socket
import time
from collections.abc import Iterable

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK: tuple[IPNetwork, ...] = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$")
_PORT = re.compile(r"^[0-9]{1,5}$")


class InvalidAddress(ValueError):
    """A host or port from the wire that no packet may be sent to."""


def ip_literal(host: str) -> IPAddress | None:
    """The address when `host` is an IP literal (IPv6 with or without brackets), else None."""
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not text or len(text) > 64:
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_hostname(host: str) -> bool:
    """RFC 1123 syntax (letters, digits, hyphens, dots): a name that could be resolved."""
    return bool(_HOSTNAME.match(host)) and not host.replace(".", "").isdigit()


def port_number(text: str) -> int:
    """A port from the wire: 1–65535, ASCII digits only (int() would take '+5', ' 5' and '٥')."""
    if not _PORT.match(text) or not 0 < int(text) <= 65535:
        raise InvalidAddress(f"bad port {text[:20]!r}")
    return int(text)


def check_host(host: str) -> str:
    """An IP literal (normalized, no brackets) or a syntactically valid host name; anything else is invalid."""
    address = ip_literal(host)
    if address is not None:
        return str(address)
    if is_hostname(host):
        return host.rstrip(".").lower()
    raise InvalidAddress(f"bad host {host[:40]!r}")


def sendable(addr: tuple[str, int], family: int = socket.AF_INET) -> tuple[str, int] | None:
    """`addr` as a socket of `family` can take it without raising, or None: an IP literal of that
    family (IPv4 is mapped on IPv6 sockets), not unspecified or multicast, port 1–65535."""
    try:
        host, port = addr
    except (TypeError, ValueError):
        return None
    if not isinstance(host, str) or not isinstance(port, int) or isinstance(port, bool) or not 0 < port <= 65535:
        return None
    address = ip_literal(host)
    if address is None or address.is_unspecified or address.is_multicast:
        return None
    if isinstance(address, ipaddress.IPv4Address) and str(address) == "255.255.255.255":
        return None
    if family == socket.AF_INET6:
        if isinstance(address, ipaddress.IPv4Address):
            return f"::ffff:{address}", port
        return str(address), port
    if family == socket.AF_INET and isinstance(address, ipaddress.IPv4Address):
        return str(address), port
    return None


def parse_networks(text: str) -> list[IPNetwork]:
    """`[sip] allowed_peers`: comma-separated addresses or CIDR networks; a host name is a configuration error."""
    networks: list[IPNetwork] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item.strip("[]"), strict=False))
        except ValueError as exc:
            raise ValueError(f"[sip] allowed_peers: {item!r} is not an address or network (CIDR)") from exc
    return networks


class PeerPolicy:
    """Who may send requests: an allow-list of networks, decided once per source address (cached)."""

    def __init__(self, networks: Iterable[IPNetwork]) -> None:
        self.networks = list(networks)
        self._cache: dict[str, bool] = {}

    def add(self, network: IPNetwork) -> None:
        self.networks.append(network)
        self._cache.clear()

    def allows(self, host: str) -> bool:
        known = self._cache.get(host)
        if known is not None:
            return known
        address = ip_literal(host)
        allowed = address is not None and any(address.version == n.version and address in n for n in self.networks)
        if len(self._cache) > 4096:  # sources vary freely under a flood: keep the cache bounded
            self._cache.clear()
        self._cache[host] = allowed
        return allowed

    def describe(self) -> str:
        return ", ".join(str(n) for n in self.networks)


class Resolver:
    """Host names resolved once, off the event loop (getaddrinfo in the executor), cached; bounded work."""

    def __init__(self, enabled: bool, family: int = socket.AF_INET, ttl: float = 300.0, max_pending: int = 16) -> None:
        self.enabled, self.family, self.ttl, self.max_pending = enabled, family, ttl, max_pending
        self._cache: dict[str, tuple[float, str | None]] = {}
        self._pending: dict[str, asyncio.Future[str | None]] = {}
        self.failures = 0

    def cached(self, host: str) -> str | None:
        """The address of a name resolved before (and still fresh), without waiting."""
        entry = self._cache.get(host.lower())
        if entry is not None and entry[0] > time.monotonic():
            return entry[1]
        return None

    async def resolve(self, host: str, trusted: bool = False) -> str | None:
        """An IP literal for `host`, or None (resolution off, failed, or too many names in flight).

        `trusted`: a name from our configuration (the registrar), resolved even when names from
        the wire are not."""
        literal = ip_literal(host)
        if literal is not None:
            return str(literal)
        if not (self.enabled or trusted) or not is_hostname(host):
            return None
        key = host.rstrip(".").lower()
        entry = self._cache.get(key)
        if entry is not None and entry[0] > time.monotonic():
            return entry[1]
        if key in self._pending:
            return await asyncio.shield(self._pending[key])
        if len(self._pending) >= self.max_pending:
            self.failures += 1
            return None
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        result: str | None = None
        try:
            async with asyncio.timeout(5):
                infos = await asyncio.get_running_loop().getaddrinfo(key, None, family=self.family,
                                                                     type=socket.SOCK_DGRAM)
            result = next((str(info[4][0]) for info in infos), None)
        except (OSError, TimeoutError, UnicodeError) as exc:
            log.info("could not resolve %s: %s", key, exc)
        finally:
            if result is None:
                self.failures += 1
            if len(self._cache) > 1024:
                self._cache.clear()
            self._cache[key] = (time.monotonic() + (self.ttl if result else 30.0), result)
            self._pending.pop(key, None)
            future.set_result(result)
        return result
