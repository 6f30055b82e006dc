"""run_hotline.py purge [--dry-run] and run_hotline.py resident export|erase --account N | --phone P | --openid O."""
from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from hotline.actors import Actor
from hotline.config import Config

CLI = Actor(kind="system", name="命令行")


def add_parsers(sub: Any) -> None:
    purge = sub.add_parser("purge", help="delete or anonymize personal data past its [retention] days")
    purge.add_argument("--dry-run", action="store_true", help="only say what would go")
    resident = sub.add_parser("resident", help="a resident's data: export a copy, or erase it")
    resident.add_argument("action", choices=["export", "erase"])
    who = resident.add_mutually_exclusive_group(required=True)
    who.add_argument("--account", help="户号")
    who.add_argument("--phone")
    who.add_argument("--openid", help="WeChat openid")
    resident.add_argument("--out", help="export: file to write (.json or .xlsx; default: JSON on standard output)")
    resident.add_argument("--yes", action="store_true", help="erase without asking (it cannot be undone)")


def _subject(args: argparse.Namespace) -> tuple[str, str]:
    for kind in ("account", "phone", "openid"):
        if getattr(args, kind):
            return kind, getattr(args, kind)
    raise ValueError("give --account, --phone or --openid")


def _lines(counts: dict[str, Any]) -> str:
    return "\n".join(f"  {name:<16} {value}" for name, value in counts.items())


async def _purge(config: Config, dry_run: bool) -> str:
    from hotline.context import build_context
    from hotline.privacy.purge import run_purge
    ctx = build_context(config)
    try:
        report = await run_purge(ctx, dry_run=dry_run, actor_kind="system", actor_name=CLI.name)
    finally:
        await ctx.engine.dispose()
    if dry_run:
        return "would delete or anonymize (dry run, nothing changed):\n" + _lines(report.counts)
    return (f"purge {report.run_id}: deleted or anonymized\n{_lines(report.counts)}\n"
            f"{report.batches} batches, longest {report.longest_batch_ms:.1f} ms")


async def _resident(config: Config, args: argparse.Namespace) -> str:
    from hotline.context import build_context
    from hotline.privacy import export, requests
    kind, value = _subject(args)
    ctx = build_context(config)
    try:
        if args.action == "export":
            result = await requests.export_resident(ctx, kind, value, CLI, "CLI resident export")
            if args.out:
                body = (await asyncio.to_thread(export.to_xlsx, result.data) if args.out.endswith(".xlsx")
                        else export.to_json(result.data))
                await asyncio.to_thread(Path(args.out).write_bytes, body)
            else:
                sys.stdout.write(export.to_json(result.data).decode() + "\n")
                return ""
            return f"export {result.run_id} written to {args.out}:\n" + _lines(result.counts)
        done = await requests.erase_resident(ctx, kind, value, CLI)
        return f"erasure {done['run_id']}:\n" + _lines(done["counts"]) + "\nkept: " + ", ".join(done["kept"])
    finally:
        await ctx.engine.dispose()


def run(config: Config, args: argparse.Namespace) -> str:
    if args.command == "purge":
        return asyncio.run(_purge(config, args.dry_run))
    if args.action == "erase" and not args.yes and sys.stdin.isatty():
        answer = input("erase this resident's personal data? it cannot be undone [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            return "nothing erased"
    return asyncio.run(_resident(config, args))



