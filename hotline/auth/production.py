"""[service] environment: what a production service refuses and what it turns on.

`development` (the default) is the demo and a developer's machine: anything goes.
`production` refuses to start while any active staff member's password is one the
demo publishes (the seed's, printed in the README), sends session cookies only over
HTTPS (Secure) and tells browsers to use nothing but HTTPS (HSTS); `seed-demo`
refuses to put the demo's staff into its database.
"""
from __future__ import annotations

import asyncio

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hotline.auth.passwords import verify_password
from hotline.config import Config, ConfigError
from models import Staff

ENVIRONMENTS = ("development", "production")
HSTS = "max-age=31536000; includeSubDomains"


def environment(config: Config) -> str:
    value = config.service.environment.strip().lower()
    if value not in ENVIRONMENTS:
        raise ConfigError(f"[service] environment: expected one of {', '.join(ENVIRONMENTS)}, "
                          f"got {config.service.environment!r}")
    return value


def check(config: Config) -> None:
    """At start: a typo in [service] environment or [http] trusted_proxies stops the service, not a request."""
    from hotline.api.client_address import networks
    environment(config)
    try:
        networks(config.http.trusted_proxies)
    except ValueError as exc:
        raise ConfigError(f"[http] trusted_proxies: {exc}") from None


def is_production(config: Config) -> bool:
    return config.service.environment.strip().lower() == "production"


def secure_cookies(config: Config) -> bool:
    """The session cookie's Secure flag: always in production, else as [http] secure_cookies says."""
    return config.http.secure_cookies or is_production(config)


def demo_passwords() -> frozenset[str]:
    """The passwords the demo publishes (hotline/demo/town.yml, the README)."""
    from hotline.demo.seed import DEMO_PASSWORDS  # the seed imports the ticket machinery: only when asked
    return DEMO_PASSWORDS


async def demo_password_holders(session: AsyncSession) -> list[str]:
    """Active staff whose password is a demo password (each hash tried with each; the KDF runs in threads)."""
    rows = (await session.execute(select(Staff.username, Staff.password_hash).where(Staff.active.is_(True))
                                  .order_by(Staff.username))).all()
    known = sorted(demo_passwords())

    async def holds(stored: str) -> bool:
        for password in known:
            if await verify_password(password, stored):
                return True
        return False

    found = await asyncio.gather(*(holds(stored) for _, stored in rows))
    return [name for (name, _), demo in zip(rows, found, strict=True) if demo]


async def check_staff(session: AsyncSession) -> None:
    """Refuse a production start while a demo password opens the console."""
    holders = await demo_password_holders(session)
    if holders:
        shown = ", ".join(holders[:10]) + (f" and {len(holders) - 10} more" if len(holders) > 10 else "")
        raise ConfigError(f"[service] environment = production, but staff {shown} still have the demo's public "
                          "password: set new ones (run_hotline.py adduser NAME --role ROLE) or deactivate them")


def refuse_demo_password(config: Config, password: str) -> None:
    """In production, a demo password is not accepted for anyone."""
    if is_production(config) and password in demo_passwords():
        raise ConfigError("that is the demo's public password; choose another")
