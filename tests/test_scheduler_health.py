"""A background job whose runs keep failing is down in /healthz, /readyz and /metrics, and back up once a run works."""
from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from hotline.actors import Actor
from hotline.app import create_app
from hotline.callbacks import scheduler as callback_scheduler
from hotline.context import AppContext
from hotline.health import JobRuns
from hotline.tickets import escalation
from tests.conftest import eventually

pytestmark = pytest.mark.asyncio


class Breakable:
    """Stands in for a job's sweep: fails while `broken`, and counts its calls."""

    def __init__(self) -> None:
        self.broken = True
        self.calls = 0

    async def __call__(self, *args: Any, **kwargs: Any) -> int:
        self.calls += 1
        if self.broken:
            raise RuntimeError("no such table: callback_tasks")
        return 0


@pytest_asyncio.fixture
async def running(ctx: AppContext, staff: dict[str, Actor], monkeypatch: pytest.MonkeyPatch
                  ) -> AsyncIterator[tuple[TestClient, dict[str, Breakable]]]:
    """The service with both schedulers on, each sweeping every 20 ms with a sweep that fails."""
    sweeps = {"callbacks": Breakable(), "escalation": Breakable()}
    monkeypatch.setattr(callback_scheduler, "sweep", sweeps["callbacks"])
    monkeypatch.setattr(escalation, "sweep", sweeps["escalation"])
    ctx.config.callback.enabled = ctx.config.escalation.enabled = True
    ctx.config.callback.interval_seconds = ctx.config.escalation.interval_seconds = 0.02
    async with TestClient(TestServer(create_app(ctx))) as client:
        yield client, sweeps


def _job_up(text: str) -> dict[str, float]:
    return {s.labels["job"]: s.value for family in text_string_to_metric_families(text)
            for s in family.samples if s.name == "hotline_job_up"}


async def test_a_scheduler_failing_every_run_is_down_until_a_run_works(running) -> None:
    client, sweeps = running
    await eventually(lambda: all(s.calls >= 4 for s in sweeps.values()))
    health = await (await client.get("/healthz")).json()
    assert health["status"] == "degraded" and health["down"] == ["callbacks", "escalation"]
    callbacks = health["components"]["callbacks"]
    assert callbacks["up"] is False and callbacks["failing_in_a_row"] >= 3
    assert callbacks["last_error"] == "RuntimeError: no such table: callback_tasks"
    ready = await client.get("/readyz")
    assert ready.status == 503 and (await ready.json())["down"] == ["callbacks", "escalation"]
    metrics = await client.get("/metrics")
    up = _job_up(await metrics.text())
    assert up["callbacks"] == up["escalation"] == 0 and up["incident_detection"] == 1  # the others still work

    sweeps["callbacks"].broken = sweeps["escalation"].broken = False  # e.g. the database is back

    async def ready_again() -> bool:
        return (await client.get("/readyz")).status == 200
    assert await eventually(ready_again)
    health = await (await client.get("/healthz")).json()
    assert health["status"] == "ok" and health["components"]["callbacks"]["failures"] >= 3
    assert set(_job_up(await (await client.get("/metrics")).text()).values()) == {1}


async def test_one_failed_run_is_retried_quietly() -> None:
    runs = JobRuns("outbox")
    with runs.attempt():
        raise ConnectionResetError("database restarted")
    assert runs()["up"] is True and runs.failing == 1
    with runs.attempt():
        pass
    with runs.attempt():
        raise ConnectionResetError("again")
    assert runs()["up"] is True and runs.failures == 2 and runs.failing == 1


async def test_incident_detection_failing_for_every_report_is_down(client, ctx, monkeypatch) -> None:
    from hotline.incidents import notices
    from tests.conftest import SERVICE

    async def broken(ctx: AppContext, ticket_id: int) -> None:
        raise RuntimeError("no such table: incidents")

    monkeypatch.setattr(notices, "detect_report", broken)
    for i in range(3):
        resp = await client.post("/api/tickets", headers=SERVICE, json={
            "category": "repair", "business_type": "no_water", "description": "家里没水了", "channel": "phone",
            "phone": f"1380000000{i}", "address": "定州市中山东路幸福家园3号楼"})
        assert resp.status == 201, await resp.text()
    detection = ctx.health_checks["incident_detection"]
    assert await eventually(lambda: detection.runs == 3)
    health = await (await client.get("/healthz")).json()
    assert health["down"] == ["incident_detection"]
    assert health["components"]["incident_detection"]["last_error"] == "RuntimeError: no such table: incidents"
