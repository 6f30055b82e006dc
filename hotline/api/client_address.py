"""Who is on the other end of a request: the peer, or behind a trusted reverse proxy, the address it saw.

Only a peer listed in [http] trusted_proxies may say who it forwards for (X-Forwarded-For):
anyone else could name any address, dodge the sign-in throttle or pass /metrics'
address check. The header is read from the right, skipping the trusted proxies'
own entries, so a client's forged left-hand entries are never believed.
"""
from __future__ import annotations

import functools
import ipaddress

from aiohttp import web

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=16)
def networks(text: str) -> tuple[Network, ...]:
    """Comma-separated addresses or CIDR networks; ValueError names a bad one."""
    out = []
    for part in text.split(","):
        part = part.strip()
        if part:
            try:
                out.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                raise ValueError(f"not an address or network: {part!r}") from None
    return tuple(out)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(text.strip().split("%")[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def within(address: str, trusted: str) -> bool:
    ip = _ip(address)
    return ip is not None and any(ip in net for net in networks(trusted))


def resolve(request: web.Request, trusted: str) -> tuple[str, bool]:
    """(the client's address, whether it is really the client's).

    From an untrusted peer: the peer, True. From a trusted proxy: the right-most
    X-Forwarded-For entry that is not itself a trusted proxy, True; when there is none
    (no header, or only proxies or a garbled entry), the proxy's own address, False:
    every client behind it would share it.
    """
    peer = request.remote or ""
    if not trusted or not within(peer, trusted):
        return peer, True
    entries = ",".join(request.headers.getall("X-Forwarded-For", [])).split(",")
    for entry in reversed(entries):
        ip = _ip(entry)
        if ip is None:
            break  # a garbled hop: what lies left of it cannot be trusted
        if not any(ip in net for net in networks(trusted)):
            return str(ip), True
    return peer, False


def client_address(request: web.Request, trusted: str) -> str:
    """The client's address as far as it can be known (see resolve)."""
    return resolve(request, trusted)[0]
