"""Sign-in throttling that neither tells which names exist nor lets anyone lock a staff member out.

A lock on the account itself would let anyone lock any staff member out with
five requests, and locking only names that exist tells an attacker which do.
Instead attempts are counted per (name, client address) and per client address,
for every name alike, in this process's memory:

- five attempts at one name from one address within 15 minutes bar that pair
  for 15 minutes (the real user, signing in from their own address, is not
  affected);
- thirty attempts at any names from one address bar that address (an IPv6
  address counts as its /64, which one attacker usually holds whole).

An attempt is counted when it starts, so parallel guesses cannot slip past the
limit; a successful sign-in clears its pair and gives its attempt back to the
address (without wiping the address's count, which an attacker with an account
of their own could otherwise do between guesses). Several service processes
each count on their own.

Memory is bounded without letting an attacker wash locks away: a barred address
gets its answer before any counter is made for the name it tries (so a flood of
new names from it costs nothing), and when `max_entries` counters are held, the
least recently used *unbarred* counters go first; a lock is dropped only when
nothing else is left, oldest first. Behind a reverse proxy that does not say who
it forwards for, the address is unknown (`address=None`): only the pair is
counted, so one attacker cannot lock out everyone behind the proxy.
"""
from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

PAIR_LIMIT = 5
ADDRESS_LIMIT = 30
WINDOW_SECONDS = 15 * 60
LOCKOUT_SECONDS = 15 * 60  # at least WINDOW_SECONDS: a lock outlasts the window it was earned in


@dataclass
class _Counter:
    attempts: int
    window_ends: float
    locked_until: float = 0.0


def address_key(address: str) -> str:
    """The unit an address is counted in: the IPv4 address, or the IPv6 /64."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class LoginThrottle:
    def __init__(self, *, pair_limit: int = PAIR_LIMIT, address_limit: int = ADDRESS_LIMIT,
                 window: float = WINDOW_SECONDS, lockout: float = LOCKOUT_SECONDS, max_entries: int = 50_000,
                 now: Callable[[], float] = time.monotonic) -> None:
        self.pair_limit, self.address_limit = pair_limit, address_limit
        self.window, self.lockout = window, max(lockout, window)
        self.max_entries = max_entries
        self.now = now
        self._counters: OrderedDict[tuple[str, ...], _Counter] = OrderedDict()  # unbarred, least recent first
        self._locks: OrderedDict[tuple[str, ...], _Counter] = OrderedDict()  # barred, oldest lock first

    def __len__(self) -> int:
        return len(self._counters) + len(self._locks)

    @staticmethod
    def _keys(username: str, address: str | None) -> tuple[tuple[str, ...], tuple[str, ...] | None]:
        where = address_key(address) if address is not None else "unknown"
        pair = ("pair", username.strip().casefold(), where)
        return pair, (("address", where) if address is not None else None)

    def _expire_locks(self, now: float) -> None:
        while self._locks:
            key, counter = next(iter(self._locks.items()))
            if counter.locked_until > now:
                return
            del self._locks[key]

    def _lock_wait(self, key: tuple[str, ...] | None, now: float) -> float:
        counter = self._locks.get(key) if key is not None else None
        return counter.locked_until - now if counter is not None and counter.locked_until > now else 0.0

    def _counter(self, key: tuple[str, ...], now: float) -> _Counter:
        counter = self._counters.get(key)
        if counter is None or counter.window_ends <= now:
            counter = _Counter(0, now + self.window)
        self._counters[key] = counter
        self._counters.move_to_end(key)
        return counter

    def _lock(self, key: tuple[str, ...], counter: _Counter, now: float) -> None:
        counter.locked_until = now + self.lockout
        self._counters.pop(key, None)
        self._locks[key] = counter

    def _bound(self) -> None:
        while len(self) > self.max_entries:
            if self._counters:
                self._counters.popitem(last=False)
            else:
                self._locks.popitem(last=False)

    def begin(self, username: str, address: str | None) -> float:
        """Count an attempt; or, while the pair or the address is barred, the seconds left (nothing counted).

        `address` None: the client's address is unknown (a proxy that names nobody); only the pair counts."""
        now = self.now()
        self._expire_locks(now)
        pair_key, address_key_ = self._keys(username, address)
        wait = max(self._lock_wait(address_key_, now), self._lock_wait(pair_key, now))
        if wait > 0:
            return wait  # barred: no counter is made or touched
        pair = self._counter(pair_key, now)
        pair.attempts += 1
        if pair.attempts >= self.pair_limit:
            self._lock(pair_key, pair, now)
        if address_key_ is not None:
            where = self._counter(address_key_, now)
            where.attempts += 1
            if where.attempts >= self.address_limit:
                self._lock(address_key_, where, now)
        self._bound()
        return 0.0

    def succeeded(self, username: str, address: str | None) -> None:
        """The attempt was right: forget the pair, give the attempt back to the address."""
        pair_key, address_key_ = self._keys(username, address)
        self._counters.pop(pair_key, None)
        self._locks.pop(pair_key, None)
        if address_key_ is None:
            return
        where = self._counters.get(address_key_) or self._locks.get(address_key_)
        if where is not None:
            where.attempts = max(where.attempts - 1, 0)
            if where.attempts < self.address_limit and address_key_ in self._locks:
                where.locked_until = 0.0
                del self._locks[address_key_]
                self._counters[address_key_] = where
