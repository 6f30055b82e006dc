"""The durable outbox (hotline/integrations/outbox.py) on its own, with a transport of the test's making:
retries that run out fail the message for good, for admins to see, and hold back the later messages of its key."""
from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from hotline.integrations import outbox
from models import OutboxMessage

pytestmark = pytest.mark.asyncio

TARGET = "test-system"
SETTINGS = outbox.Settings(max_attempts=3, backoff_seconds=5, backoff_max_seconds=20)


class System:
    """The other side: refuses (503) or breaks (raises) while down; records every attempt."""

    def __init__(self) -> None:
        self.down = True
        self.raises = False
        self.attempts: list[tuple[str, str]] = []  # (key, payload's text) of every attempt
        self.received: list[str] = []

    async def send(self, message: outbox.Outgoing) -> outbox.Result:
        self.attempts.append((message.key, message.payload["text"]))
        if self.down and self.raises:
            raise ConnectionResetError("connection reset by peer")
        if self.down and message.key == "order-1":
            return outbox.Result(False, "HTTP 503: Service Unavailable")
        self.received.append(message.payload["text"])
        return outbox.Result(True)


async def _rows(ctx) -> dict[str, OutboxMessage]:
    async with ctx.readers() as session:
        rows = (await session.execute(select(OutboxMessage).order_by(OutboxMessage.id))).scalars()
        return {row.payload["text"]: row for row in rows}


async def test_a_message_whose_retries_run_out_is_failed_and_holds_back_its_order(ctx, clock) -> None:
    system, heard = System(), list[dict[str, Any]]()
    ctx.live.subscribe(heard.append)
    async with ctx.sessions.begin() as session:
        for key, text in (("order-1", "签收"), ("order-1", "办结回复"), ("order-2", "签收 2")):
            outbox.enqueue(session, TARGET, "note", key, {"text": text}, clock())

    async def deliver() -> int:
        return await outbox.deliver_due(ctx.sessions, clock(), SETTINGS, {TARGET: system})

    assert await deliver() == 1  # another order's message is not held back by this one
    assert system.received == ["签收 2"]
    for _ in range(4):  # each retry when its back-off is over (5 s, 10 s), and well after the last
        clock.advance(seconds=25)
        await deliver()
    rows = await _rows(ctx)
    failed = rows["签收"]
    assert (failed.state, failed.attempts, failed.next_attempt_at) == ("failed", 3, None)
    assert failed.last_error == "HTTP 503: Service Unavailable"
    assert system.attempts.count(("order-1", "签收")) == 3  # max_attempts, then no more
    assert ("order-1", "办结回复") not in system.attempts  # the later message of the order waits behind it
    assert (rows["办结回复"].state, rows["办结回复"].attempts) == ("pending", 0)
    assert {"type": outbox.CHANGED, "target": TARGET, "ticket_id": None, "state": "failed"} in heard  # consoles

    clock.advance(hours=1)
    await deliver()
    assert system.attempts.count(("order-1", "签收")) == 3  # failed for good: not tried again by itself

    # An admin sends it again once the other side is back: a fresh round, and the order's next follows it.
    system.down = False
    async with ctx.sessions.begin() as session:
        again = await outbox.retry(session, failed.id, clock())
        assert again is not None and (again.state, again.attempts) == ("pending", 0)
    assert await deliver() == 2
    assert system.received == ["签收 2", "签收", "办结回复"]
    assert {row.state for row in (await _rows(ctx)).values()} == {"sent"}


async def test_a_transport_that_raises_uses_up_the_attempts_too(ctx, clock) -> None:
    system = System()
    system.raises = True
    async with ctx.sessions.begin() as session:
        outbox.enqueue(session, TARGET, "note", "order-3", {"text": "进展"}, clock())
    for _ in range(SETTINGS.max_attempts):
        await outbox.deliver_due(ctx.sessions, clock(), SETTINGS, {TARGET: system})
        clock.advance(seconds=25)
    row = (await _rows(ctx))["进展"]
    assert (row.state, row.attempts) == ("failed", 3)
    assert row.last_error == "ConnectionResetError: connection reset by peer"


async def test_a_worker_whose_sweeps_keep_failing_is_down_and_comes_back(ctx, clock, monkeypatch) -> None:
    """The outbox worker's health check (ctx.health_checks["outbox"] is its JobRuns): down once its sweeps fail
    three times in a row (the database gone, say), up again after one works."""
    import asyncio

    from tests.conftest import eventually
    broken = True
    deliver_due = outbox.deliver_due

    async def sweep(*args: Any, **kwargs: Any) -> int:
        if broken:
            raise ConnectionRefusedError("the database is not answering")
        return await deliver_due(*args, **kwargs)

    monkeypatch.setattr(outbox, "deliver_due", sweep)
    worker = outbox.Worker(ctx.sessions, ctx.live, SETTINGS, clock, interval=0.01)
    task = worker.runs.watch(asyncio.create_task(worker.run()))
    try:
        assert await eventually(lambda: not worker.runs()["up"])
        state = worker.runs()
        assert state["failing_in_a_row"] >= 3 and state["last_error"] == (
            "ConnectionRefusedError: the database is not answering")
        broken = False
        assert await eventually(lambda: worker.runs()["up"])
    finally:
        task.cancel()
        worker.close()
    assert await eventually(lambda: task.done()) and worker.runs()["up"] is False  # a loop that ended is down
