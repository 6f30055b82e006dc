#!/usr/bin/env python3
"""Run the hotline service, or one of its admin commands.

Configuration comes from hotline.toml (or --config) and HOTLINE_<SECTION>_<KEY>
environment variables, which win over the file.
"""
from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys

from hotline.config import ConfigError, describe_settings, load_config
from hotline.ivr.flows import FlowError
from hotline.ivr.prompts import PromptError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run_hotline.py", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="The 24-hour hotline and chatbot service of the water utility.",
        epilog="settings (file key, environment variable, default):\n" + describe_settings())
    parser.add_argument("--config", help="configuration file (default: hotline.toml if present)")
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="start the service (the default)")
    sub.add_parser("migrate", help="bring the database schema up to date")
    init = sub.add_parser("init", help="create the first admin with a generated password (printed once)")
    init.add_argument("--name", default="admin", help="the admin's user name (default: admin)")
    demo = sub.add_parser("seed-demo", help="fill an empty database with demo accounts, staff and tickets")
    demo.add_argument("--accounts", type=int, default=3000)
    add = sub.add_parser("adduser", help="create a staff member or reset one (password on stdin)")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=["agent", "supervisor", "department", "admin"])
    add.add_argument("--department", help="department code from the routing file")
    add.add_argument("--display-name")
    nlu = sub.add_parser("export-nlu", help="write agents' corrections of the bot as Rasa NLU YAML, for review")
    nlu.add_argument("--out", help="file to write (default: standard output)")
    nlu.add_argument("--since", help="only corrections from this date on (YYYY-MM-DD)")
    from hotline.privacy import cli as privacy_cli
    privacy_cli.add_parsers(sub)  # purge [--dry-run]; resident export|erase --account|--phone|--openid
    return parser


def _migrate(config) -> None:
    from hotline.private_files import protect
    from models.migrate import upgrade
    protect(config)
    upgrade(config.database_url)
    protect(config)  # the SQLite file just made


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            raise SystemExit("passwords differ")
        return first
    return sys.stdin.readline().rstrip("\n")


async def _adduser(config, args) -> str:
    from hotline.auth.production import refuse_demo_password
    from hotline.auth.staff import upsert_staff
    from hotline.context import build_context
    from hotline.tickets.departments import sync_departments
    ctx = build_context(config)
    try:
        async with ctx.sessions.begin() as session:
            await sync_departments(session, ctx.router)
            password = _read_password()
            refuse_demo_password(config, password)
            staff = await upsert_staff(session, args.name, password, args.role,
                                       args.display_name, args.department)
            await sync_departments(session, ctx.router)
        return f"staff {staff.username} ({staff.role}) saved"
    finally:
        await ctx.engine.dispose()


async def _init(config, name: str) -> str:
    from hotline.auth.staff import create_first_admin
    from hotline.context import build_context
    from hotline.tickets.departments import sync_departments
    ctx = build_context(config)
    try:
        async with ctx.sessions.begin() as session:
            await sync_departments(session, ctx.router)
            password = await create_first_admin(session, name)
        return (f"admin {name!r} created with the password\n\n    {password}\n\n"
                "It is shown this once and stored only as a hash: note it now, sign in at /console "
                "and add the other staff (adduser).")
    finally:
        await ctx.engine.dispose()


async def _check_production(config) -> None:
    """A production start is refused while a demo password opens the console."""
    from hotline.auth import production
    from hotline.context import build_context
    if not production.is_production(config):
        return
    ctx = build_context(config)
    try:
        async with ctx.readers() as session:
            await production.check_staff(session)
    finally:
        await ctx.engine.dispose()


async def _seed(config, accounts: int) -> str:
    from hotline.context import build_context
    from hotline.demo.seed import seed_demo
    ctx = build_context(config)
    try:
        return await seed_demo(ctx, accounts)
    finally:
        await ctx.engine.dispose()


async def _export_nlu(config, since: str | None) -> str:
    import datetime as dt

    from hotline.api.nlu_feedback import export_rows, nlu_yaml
    from hotline.context import build_context
    start = dt.datetime.fromisoformat(since).replace(tzinfo=dt.UTC) if since else None
    ctx = build_context(config)
    try:
        async with ctx.readers() as session:
            return nlu_yaml(await export_rows(session, start))
    finally:
        await ctx.engine.dispose()


def _serve(config) -> None:
    from aiohttp import web

    from hotline.api.middleware import RedactingAccessLogger
    from hotline.app import create_app
    from hotline.context import build_context
    config.bot.check(config.database_url)  # e.g. several Rasa workers without shared stores: refused here
    asyncio.run(_check_production(config))  # e.g. a demo password in production: refused here
    ctx = build_context(config)
    if config.sip.enabled:
        from hotline.ivr.service import load_configured_flow
        load_configured_flow(ctx)  # a bad flow file stops the start here, naming the file and line
    logging.getLogger("hotline").info("database %s", ctx.engine.url.render_as_string(hide_password=True))
    # The access log without WeChat's signatures and nonces (they would let a reader replay a push).
    web.run_app(create_app(ctx), host=config.http.host, port=config.http.port, print=None,
                access_log_class=RedactingAccessLogger)


def main(argv: list[str] | None = None) -> int:
    from hotline import private_files, redact
    private_files.restrict_umask()  # before any file is made: the database, recordings, keys are the service's
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    redact.install()  # phone numbers, openids and tokens masked in every log line, whatever wrote it
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        config = load_config(args.config)
        from hotline.auth import production
        production.check(config)  # a typo in [service] environment or [http] trusted_proxies stops here
        command = args.command or "serve"
        _migrate(config)
        if command == "serve":
            _serve(config)
        elif command == "migrate":
            print("database schema is up to date")
        elif command == "init":
            print(asyncio.run(_init(config, args.name)))
        elif command == "seed-demo":
            print(asyncio.run(_seed(config, args.accounts)))
        elif command == "adduser":
            print(asyncio.run(_adduser(config, args)))
        elif command in ("purge", "resident"):
            from hotline.privacy import cli as privacy_cli
            print(privacy_cli.run(config, args))
        elif command == "export-nlu":
            text = asyncio.run(_export_nlu(config, args.since))
            if args.out:
                with open(args.out, "w", encoding="utf-8") as out:
                    out.write(text)
            else:
                sys.stdout.write(text)
    except (ConfigError, ValueError, FlowError, PromptError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
