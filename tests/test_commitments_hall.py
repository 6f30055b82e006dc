"""/commitments shows the service hall's address the utility set, and none (not a placeholder) when unset."""
from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from hotline.reports.commitments import PAGE

pytestmark = pytest.mark.asyncio


async def test_no_placeholder_address_until_the_utility_sets_one(client: TestClient) -> None:
    page = await (await client.get("/commitments")).text()
    hall = page[page.index("<h2>营业厅</h2>"):]
    hall = hall[:hall.index("</section>")]
    assert "示例" not in hall and "中山路" not in hall and "<p>" not in hall
    assert "工作日 08:30–17:30" in hall  # the hours are still shown

    commitments = client.server.app[PAGE]
    spec = commitments.spec
    commitments.spec = spec.model_copy(update={"service_hall": spec.service_hall.model_copy(
        update={"address": "定州市建设路 16 号"})})
    await commitments.build()
    page = await (await client.get("/commitments")).text()
    assert "<h2>营业厅</h2><p>定州市建设路 16 号</p>" in page
