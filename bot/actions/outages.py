"""Known outages first: a resident without water in an area with a current outage hears about it
before any repair form (or, when the area is only known from the address or the 户号, as soon as it is
given). The hotline places both as it places reports: an account's supply area first, then the street
words, then the WeChat location (GET /api/areas/locate)."""
from __future__ import annotations

import datetime as dt
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions import hotline_api, knowledge
from actions.common import find_account, metadata

SHANGHAI = dt.timezone(dt.timedelta(hours=8))
NO_WATER = ("no_water", "low_pressure")


def local(iso: str | None) -> str:
    if not iso:
        return ""
    return dt.datetime.fromisoformat(iso).astimezone(SHANGHAI).strftime("%m月%d日%H:%M")


async def locate(address: str = "", latitude: Any = None, longitude: Any = None,
                 account: str | None = None) -> str | None:
    """The hotline's area for an account, an address or a WeChat location (only the area comes back)."""
    params = {"address": address[:500]}
    if account:
        params["account"] = account
    if latitude is not None and longitude is not None:
        params |= {"latitude": str(latitude), "longitude": str(longitude)}
    return (await hotline_api.request("GET", "/api/areas/locate", params=params)).get("area")


async def area_for(tracker: Tracker, text: str = "") -> str | None:
    """The resident's supply area: from the account given (in the slot or in these words), an address in
    the words, the account bound on WeChat, or the WeChat location (the hotline knows the accounts' areas
    and the areas' streets and outlines)."""
    from actions.binding import bound_accounts  # binding's form checks import this module
    account = tracker.get_slot("account_number") or find_account(text)
    try:
        if account and (area := await locate(account=str(account))):
            return area
    except (hotline_api.NotFound, hotline_api.ApiUnavailable, hotline_api.Rejected):
        pass
    try:
        meta = metadata(tracker)
        for source in (text, str(meta.get("address") or ""), str(tracker.get_slot("address") or "")):
            area = await hotline_api.locate(source) if source else None
            if area:
                return area  # the street the resident names comes before where they live or stand
        bound = await bound_accounts(tracker)
        if bound:
            return bound[0].get("area")
        if meta.get("latitude") is not None:
            return await hotline_api.locate("", meta.get("latitude"), meta.get("longitude"))
    except (hotline_api.NotFound, hotline_api.ApiUnavailable, hotline_api.Rejected):
        pass
    return None


async def current(area: str) -> list[dict[str, Any]]:
    """Outages in the area that have started and are not over."""
    now = dt.datetime.now(dt.UTC)
    found = await hotline_api.get_outages(area)
    return [o for o in found if dt.datetime.fromisoformat(o["starts_at"]) <= now]


def describe(area: str, found: list[dict[str, Any]]) -> str:
    lines = [f"您所在的{area}目前正在停水："]
    for o in found[:3]:
        kind = "计划停水" if o["planned"] else "抢修停水"
        lines.append(f"【{kind}】{o['title']}，预计{local(o['ends_at'])}恢复供水。{o['detail']}")
    return "\n".join(lines)


async def mention_for_address(dispatcher: CollectingDispatcher, tracker: Tracker, address: str) -> None:
    """Inside the repair form: say so when the address given is in an area without water right now."""
    await mention_for_place(dispatcher, tracker, address=address)


async def mention_for_account(dispatcher: CollectingDispatcher, tracker: Tracker, account: str) -> None:
    """Inside the repair form: say so when the 户号 given is in an area without water right now (the
    account's area, which its address on file may not name in words the hotline knows)."""
    await mention_for_place(dispatcher, tracker, account=account)


async def mention_for_place(dispatcher: CollectingDispatcher, tracker: Tracker, *, address: str = "",
                            account: str | None = None) -> None:
    """Before a repair ticket is offered: a current outage in the area of the address or account given."""
    if knowledge.business_type("repair", str(tracker.get_slot("problem") or "")) not in NO_WATER:
        return
    try:
        area = await locate(address, account=account)
    except (hotline_api.ApiUnavailable, hotline_api.Rejected, hotline_api.NotFound):
        return
    if not area or any(e.get("event") == "bot" and "目前正在停水" in (e.get("text") or "") for e in tracker.events):
        return  # no area, or the resident has heard it already
    try:
        found = await current(area)
    except hotline_api.ApiUnavailable:
        return
    if found:
        dispatcher.utter_message(text=describe(area, found) + "\n如果您家没水是这个原因，可以回复“取消”；否则我继续为您登记报修。")
