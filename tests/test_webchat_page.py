"""The resident's web chat page: a greeting before anything is typed, an icon, the last conversation
after a reload (closed ones too, with their ticket numbers), the rating as buttons, and a waiting
resident's place in the agents' queue as it changes."""
from __future__ import annotations

import pytest

from tests.conftest import SERVICE, login
from tests.test_conversations import FakeRasa, _conversation, _recv, _status, chat  # noqa: F401  (the fixture)

pytestmark = pytest.mark.asyncio


async def test_the_page_greets_with_what_it_can_do_and_has_an_icon(chat, ctx) -> None:
    client, _ = chat
    page = await (await client.get("/chat")).text()
    greeting = ctx.messages("webchat.greeting")
    assert greeting in page
    for can in ("报修", "投诉", "咨询", "查水费", "工单", "转人工"):
        assert can in greeting
    assert 'href="/privacy"' in page and "<script>" not in page
    assert 'rel="icon" href="/chat/static/icon.svg"' in page
    icon = await client.get("/chat/static/icon.svg")
    assert icon.status == 200 and icon.headers["Content-Type"].startswith("image/svg+xml")
    assert "<svg" in await icon.text()


async def test_after_a_reload_a_closed_chat_is_still_there_with_its_ticket_and_rating_buttons(chat, ctx) -> None:
    client, _ = chat
    ws = await client.ws_connect("/ws/chat?client=resident-closed-1")
    await _recv(ws, "history")
    await ws.send_json({"type": "message", "id": "m1", "text": "楼道水管漏水"})
    await _recv(ws, "message")
    conv = await _conversation(ctx)
    created = await client.post("/api/tickets", headers=SERVICE, json={
        "category": "repair", "business_type": "leak", "description": "楼道水管漏水", "channel": "web",
        "conversation_id": conv.id})
    number = (await created.json())["number"]
    headers = await login(client, "sup")
    assert (await client.post(f"/api/conversations/{conv.id}/close", headers=headers)).status == 200
    while "打分" not in (rating := await _recv(ws, "message"))["text"]:
        pass
    values = [c["value"] for c in rating["choices"]]
    assert values == ["1", "2", "3", "4", "5"] and "满意" in rating["choices"][-1]["label"]
    await ws.close()

    again = await client.ws_connect("/ws/chat?client=resident-closed-1")  # the page reloaded
    history = await _recv(again, "history")
    assert history["status"] == "closed"
    texts = [m["text"] for m in history["messages"]]
    assert texts[:2] == ["楼道水管漏水", "收到：楼道水管漏水"]
    assert history["tickets"] == [number] and number in history["tickets_text"]
    assert history["messages"][-1]["choices"] == rating["choices"]  # not rated yet: the buttons still work
    await again.send_json({"type": "message", "id": "m2", "text": "5"})  # what a button sends, as typing would
    assert (await _recv(again, "message"))["text"] == ctx.messages("conversation.rated")
    await again.close()

    third = await client.ws_connect("/ws/chat?client=resident-closed-1")
    history = await _recv(third, "history")
    assert history["status"] == "closed" and history["tickets"] == [number]
    assert not any("choices" in m for m in history["messages"])  # rated: no buttons any more
    await third.close()


async def test_a_waiting_resident_sees_their_place_in_the_queue_as_it_changes(chat, ctx) -> None:
    client, fake = chat
    fake.mode = "handoff"
    first = await client.ws_connect("/ws/chat?client=resident-queue-1")
    await _recv(first, "history")
    await first.send_json({"type": "message", "id": "m1", "text": "转人工"})
    await _status(first, "waiting")
    assert (await _recv(first, "queue"))["ahead"] == 0
    first_conv = await _conversation(ctx)

    second = await client.ws_connect("/ws/chat?client=resident-queue-2")
    await _recv(second, "history")
    await second.send_json({"type": "message", "id": "m1", "text": "转人工"})
    await _status(second, "waiting")
    place = await _recv(second, "queue")
    assert place["ahead"] == 1 and place["text"] == ctx.messages("webchat.queue_position", ahead=1)
    assert "您前面还有 1 位" in place["text"]

    reloaded = await client.ws_connect("/ws/chat?client=resident-queue-2")
    history = await _recv(reloaded, "history")
    assert history["status"] == "waiting" and history["queue"]["ahead"] == 1

    headers = await login(client, "agent1")
    assert (await client.post(f"/api/conversations/{first_conv.id}/take_over", headers=headers)).status == 200
    for ws in (second, reloaded):
        moved = await _recv(ws, "queue")
        assert moved["ahead"] == 0 and "您前面还有 0 位" in moved["text"]
    for ws in (first, second, reloaded):
        await ws.close()
