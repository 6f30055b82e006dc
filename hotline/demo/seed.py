"""Demo data: a town's accounts with a year of bills, staff, outages and tickets.

Deterministic (seeded) so that demos and manual tests see the same accounts.
"""
from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import yaml
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from hotline.actors import SYSTEM
from hotline.auth.production import is_production
from hotline.auth.staff import upsert_staff
from hotline.config import ConfigError
from hotline.context import AppContext
from hotline.tickets.departments import sync_departments
from hotline.tickets.lifecycle import TicketDraft, create_ticket, transition
from models import Bill, CannedReply, Customer, CustomerPhone, Outage, Payment, Staff

TOWN = yaml.safe_load((Path(__file__).resolve().parent / "town.yml").read_text(encoding="utf-8"))
CANNED_FILE = Path(__file__).resolve().parent / "canned_replies.yml"  # the shared 快捷回复 agents start with
DEMO_PASSWORD: str = TOWN["password"]
DEMO_PASSWORDS: frozenset[str] = frozenset({DEMO_PASSWORD})  # public: refused in production
PRICE_FEN_PER_M3: int = TOWN["price_fen_per_m3"]  # residential water price incl. sewage charge
AREAS: list[str] = TOWN["areas"]
STREETS: dict[str, list[str]] = TOWN["streets"]
ESTATES: list[str] = TOWN["estates"]
SURNAMES: str = TOWN["surnames"]
GIVEN: list[str] = TOWN["given_names"]
METERS: list[tuple[str, int]] = [(m["model"], m["size_mm"]) for m in TOWN["meters"]]
STAFF: list[tuple[str, str, str, str | None]] = [(p["username"], p["name"], p["role"], p["department"])
                                                  for p in TOWN["staff"]]


def _months_back(today: dt.date, count: int) -> list[dt.date]:
    first = today.replace(day=1)
    months = []
    for _ in range(count):
        first = (first - dt.timedelta(days=1)).replace(day=1)
        months.append(first)
    return list(reversed(months))


async def seed_demo(ctx: AppContext, accounts: int = 3000) -> str:
    """Fill an empty store; a store that already has customers is left alone.

    Never in production: the demo's staff and their public password would open its console."""
    if is_production(ctx.config):
        raise ConfigError("seed-demo: refused with [service] environment = production (the demo's staff "
                          "share a public password)")
    rng = random.Random(2026)
    now = ctx.clock()
    today = ctx.today()
    async with ctx.sessions.begin() as session:
        if (await session.execute(select(func.count()).select_from(Customer))).scalar_one():
            return "demo data already present; nothing changed"
        own = (await session.execute(select(Staff.username).where(Staff.username.not_in([s[0] for s in STAFF]))
                                     .limit(1))).scalar_one_or_none()
        if own is not None:  # e.g. made by `init` or `adduser`: a real installation, not a demo
            raise ConfigError(f"seed-demo: refused, this database has its own staff ({own!r}); the demo's staff "
                              "share a public password")
        await sync_departments(session, ctx.router)
        for username, name, role, dept in STAFF:
            await upsert_staff(session, username, DEMO_PASSWORD, role, name, dept)
        await sync_departments(session, ctx.router)
        await _customers(session, rng, accounts, today, now)
        await _outages(session, now)
        await _canned_replies(session, now)
    async with ctx.sessions.begin() as session:
        await _tickets(session, ctx, rng, now)
    return (f"demo data: {accounts} accounts with 12 months of bills, {len(STAFF)} staff "
            f"(password {DEMO_PASSWORD!r}), outages and sample tickets")


async def _canned_replies(session: AsyncSession, now: dt.datetime) -> None:
    """Shared canned replies from the data file, each kept unless a reply with its shortcut exists."""
    taken = set((await session.execute(select(CannedReply.shortcut))).scalars())
    for reply in yaml.safe_load(CANNED_FILE.read_text(encoding="utf-8"))["replies"]:
        if reply["shortcut"] not in taken:
            session.add(CannedReply(shortcut=reply["shortcut"], title=reply["title"], text=reply["text"],
                                    updated_at=now))


async def _bulk(session: AsyncSession, table: type, rows: list[dict]) -> None:
    for start in range(0, len(rows), 2000):
        await session.execute(insert(table), rows[start:start + 2000])


async def _customers(session: AsyncSession, rng: random.Random, count: int, today: dt.date,
                     now: dt.datetime) -> None:
    """Bulk-insert accounts, then their phones, bills and payments (ids come from the database)."""
    months = _months_back(today, 12)
    customers = []
    for i in range(count):
        area = AREAS[i % len(AREAS)]
        model, dn = METERS[0] if rng.random() < 0.7 else rng.choice(METERS)
        customers.append({
            "account_number": f"31{i + 1:08d}", "name": rng.choice(SURNAMES) + rng.choice(GIVEN), "area": area,
            "address": f"定州市{rng.choice(STREETS[area])}{rng.choice(ESTATES)}{rng.randint(1, 30)}号楼"
                       f"{rng.randint(1, 6)}单元{rng.randint(1, 18)}0{rng.randint(1, 4)}室",
            "meter_model": model, "meter_size_dn": dn, "meter_serial": f"M{rng.randint(10**9, 10**10 - 1)}",
            "status": "active", "opened_on": dt.date(rng.randint(1998, 2024), rng.randint(1, 12), 1),
            "created_at": now,
        })
    await _bulk(session, Customer, customers)
    ids = dict((await session.execute(select(Customer.account_number, Customer.id))).all())

    phones, bills, paid_bills, prepayments = [], [], [], []
    for row in customers:
        customer_id = ids[str(row["account_number"])]
        phones.append({"customer_id": customer_id, "phone": f"13{rng.randint(0, 9)}{rng.randint(10**7, 10**8 - 1)}"})
        if rng.random() < 0.3:
            phones.append({"customer_id": customer_id, "phone": f"0312{rng.randint(10**6, 10**7 - 1)}"})
        debtor = rng.random() < 0.1
        unpaid_months = rng.randint(1, 3)
        reading = rng.randint(100, 3000)
        for m, first in enumerate(months):
            volume = max(1, int(rng.gauss(9 if row["meter_size_dn"] == 15 else 30, 3)))
            amount = volume * PRICE_FEN_PER_M3
            due = (first + dt.timedelta(days=32)).replace(day=25)
            unpaid = debtor and m >= len(months) - unpaid_months
            overdue_days = (today - due).days
            # Late fee: 0.05% of the amount per day past due, at most the amount itself.
            late = min(amount, amount * overdue_days * 5 // 10000) if unpaid and overdue_days > 0 else 0
            period = first.strftime("%Y-%m")
            bills.append({"customer_id": customer_id, "period": period, "reading_previous": reading,
                          "reading_current": reading + volume, "volume_m3": volume, "amount_fen": amount,
                          "late_fee_fen": late, "paid_fen": 0 if unpaid else amount,
                          "issued_on": first + dt.timedelta(days=4), "due_on": due})
            reading += volume
            if not unpaid:
                paid_at = dt.datetime.combine(due - dt.timedelta(days=rng.randint(0, 15)), dt.time(10),
                                              tzinfo=dt.UTC)
                paid_bills.append((customer_id, period, amount, paid_at,
                                   rng.choice(["wechat", "alipay", "counter", "bank"])))
        if rng.random() < 0.15:
            prepayments.append({"customer_id": customer_id, "bill_id": None,
                                "amount_fen": rng.choice([5000, 10000, 20000]), "paid_at": now,
                                "method": "wechat", "reference": f"PRE{customer_id:06d}"})
    await _bulk(session, CustomerPhone, phones)
    await _bulk(session, Bill, bills)
    bill_ids = {(c, p): i for c, p, i in (await session.execute(
        select(Bill.customer_id, Bill.period, Bill.id)))}
    payments = [{"customer_id": c, "bill_id": bill_ids[(c, p)], "amount_fen": amount, "paid_at": paid_at,
                 "method": method, "reference": f"P{bill_ids[(c, p)]:08d}"}
                for c, p, amount, paid_at, method in paid_bills]
    await _bulk(session, Payment, payments + prepayments)


async def _outages(session: AsyncSession, now: dt.datetime) -> None:
    session.add_all([
        Outage(area="城东片区", title="中山东路主管道改造计划停水",
               detail="因中山东路DN300主管道改造，中山东路、建设路沿线小区停水，请提前储水。", planned=True,
               starts_at=now + dt.timedelta(days=1, hours=1), ends_at=now + dt.timedelta(days=1, hours=9)),
        Outage(area="开发区", title="创业大道管道抢修临时停水",
               detail="创业大道DN200管道爆裂正在抢修，预计4小时内恢复供水。", planned=False,
               starts_at=now - dt.timedelta(hours=1), ends_at=now + dt.timedelta(hours=3)),
    ])


async def _tickets(session: AsyncSession, ctx: AppContext, rng: random.Random, now: dt.datetime) -> None:
    samples = [
        ("repair", "burst_main", "建设路和中山东路路口地面冒水，水流很大", "3100000001"),
        ("repair", "low_pressure", "家里水压很低，楼上基本没水", "3100000002"),
        ("repair", "meter_fault", "水表不走字了", "3100000003"),
        ("complaint", "complaint_repair", "前天报修的漏水到现在没人来", "3100000004"),
        ("billing", "billing_dispute", "这个月水费比平时高了一倍，怀疑水表有问题", "3100000005"),
        ("inquiry", "transfer", "买了二手房，想办理过户需要什么材料", "3100000006"),
    ]
    for i, (category, business_type, text, account) in enumerate(samples):
        created = now - dt.timedelta(hours=rng.randint(1, 40))
        ticket = await create_ticket(session, ctx.router, TicketDraft(
            category=category, business_type=business_type, description=text, channel="phone",
            account_number=account), SYSTEM, created)
        if i % 2 == 0:
            await transition(session, ctx.router, ticket, "assign", SYSTEM, created + dt.timedelta(minutes=20),
                             assignee="wang.repair" if category == "repair" else "zhao.supervisor")
