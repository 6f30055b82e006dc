"""Agents mark the bot's category as wrong; the corrections export as Rasa NLU YAML for review."""
from __future__ import annotations

import yaml
from aiohttp.test_utils import TestClient

from hotline.api.nlu_feedback import export_rows, nlu_yaml
from hotline.conversations import service
from tests.conftest import SERVICE, login


async def test_an_agent_corrects_the_bots_category_and_it_exports_as_nlu_yaml(client: TestClient, ctx) -> None:
    received = await service.receive(ctx, "web", "resident-nlu-1", "水费多少钱一吨", to_bot=False)
    conv = received.conversation_id
    await service.handoff(ctx, conv, "requested", None, category="repair")
    headers = await login(client, "agent1")
    resp = await client.post(f"/api/conversations/{conv}/nlu_feedback", json={"correct_intent": "billing"},
                             headers=headers)
    assert resp.status == 201, await resp.text()
    row = await resp.json()
    assert row["text"] == "水费多少钱一吨" and row["bot_intent"] == "repair" and row["correct_intent"] == "billing"
    # the same words twice are exported once; another message with explicit words
    await client.post(f"/api/conversations/{conv}/nlu_feedback",
                      json={"correct_intent": "billing", "message_id": received.message_id}, headers=headers)
    await client.post(f"/api/conversations/{conv}/nlu_feedback",
                      json={"correct_intent": "handoff", "text": "叫你们值班的来"}, headers=headers)
    async with ctx.readers() as session:
        exported = yaml.safe_load(nlu_yaml(await export_rows(session)))
    blocks = {b["intent"]: b["examples"].split("\n") for b in exported["nlu"]}
    assert blocks["billing"][:1] == ["- 水费多少钱一吨"] and len([x for x in blocks["billing"] if x]) == 1
    assert "- 叫你们值班的来" in blocks["handoff"]


async def test_corrections_are_checked(client: TestClient, ctx) -> None:
    received = await service.receive(ctx, "web", "resident-nlu-2", "你好", to_bot=False)
    conv = received.conversation_id
    headers = await login(client, "agent1")
    bad = await client.post(f"/api/conversations/{conv}/nlu_feedback", json={"correct_intent": "weather"},
                            headers=headers)
    assert bad.status == 422
    assert (await client.post("/api/conversations/999999/nlu_feedback", json={"correct_intent": "repair"},
                              headers=headers)).status == 404
    assert (await client.post(f"/api/conversations/{conv}/nlu_feedback", json={"correct_intent": "repair"},
                              headers=SERVICE)).status == 403
