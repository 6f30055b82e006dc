"""An in-process SipServer and raw peers on 127.0.0.1, for tests that send exactly the bytes they mean."""
from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from hotline.ivr.sip import message as sip
from hotline.ivr.sip.server import Dialog, SipServer


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Peer(asyncio.DatagramProtocol):
    """A phone (or an attacker) on 127.0.0.1: sends raw datagrams, collects what comes back."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0
        self.bytes_in = self.packets_in = 0
        self.first_at: float | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.port = transport.get_extra_info("sockname")[1]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.bytes_in += len(data)
        self.packets_in += 1
        if self.first_at is None:
            self.first_at = time.monotonic()
        self.inbox.put_nowait((data, addr))

    def send(self, data: bytes, port: int) -> None:
        assert self.transport is not None
        self.transport.sendto(data, ("127.0.0.1", port))

    async def next(self, wait: float = 3.0) -> sip.SipMessage:
        data, _ = await asyncio.wait_for(self.inbox.get(), wait)
        try:
            return sip.parse(data)
        except sip.SipInvalid as exc:  # a 400 copies the Via it refuses
            return exc.message

    async def final(self, method: str, wait: float = 5.0) -> sip.SipMessage:
        """The next final response to `method` (provisional ones and other traffic skipped)."""
        deadline = asyncio.get_running_loop().time() + wait
        while True:
            msg = await self.next(max(deadline - asyncio.get_running_loop().time(), 0.01))
            if not msg.is_request and msg.status >= 200 and msg.cseq[1] == method:
                return msg

    async def request_in(self, method: str, wait: float = 5.0) -> sip.SipMessage:
        deadline = asyncio.get_running_loop().time() + wait
        while True:
            msg = await self.next(max(deadline - asyncio.get_running_loop().time(), 0.01))
            if msg.is_request and msg.method == method:
                return msg

    def drain(self) -> list[bytes]:
        out = []
        while not self.inbox.empty():
            out.append(self.inbox.get_nowait()[0])
        return out

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def open_peer() -> Peer:
    _, peer = await asyncio.get_running_loop().create_datagram_endpoint(Peer, local_addr=("127.0.0.1", 0))
    return peer


def offer(media_port: int | str, address: str = "127.0.0.1", formats: str = "0 101") -> str:
    return (f"v=0\r\no=x 1 1 IN IP4 {address}\r\ns=-\r\nc=IN IP4 {address}\r\nt=0 0\r\n"
            f"m=audio {media_port} RTP/AVP {formats}\r\na=rtpmap:101 telephone-event/8000\r\n")


def request(method: str, peer_port: int, call_id: str, *, body: str = "", cseq: int = 1, to_tag: str = "",
            via: str | None = None, extra: str = "", server_port: int = 5060) -> bytes:
    via = via or f"SIP/2.0/UDP 127.0.0.1:{peer_port};branch=z9hG4bK{uuid.uuid4().hex[:12]};rport"
    head = (f"{method} sip:12345@127.0.0.1:{server_port} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n"
            f"From: <sip:13800138000@127.0.0.1>;tag=p{peer_port}\r\n"
            f"To: <sip:12345@127.0.0.1>{';tag=' + to_tag if to_tag else ''}\r\n"
            f"Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContact: <sip:p@127.0.0.1:{peer_port}>\r\n{extra}")
    if body:
        head += "Content-Type: application/sdp\r\n"
    return (head + f"Content-Length: {len(body.encode())}\r\n\r\n" + body).encode()


class Harness:
    """One server and what it was told: answered dialogs and refused calls with their outcome."""

    def __init__(self, server: SipServer) -> None:
        self.server = server
        self.port = server.port
        self.dialogs: list[Dialog] = []
        self.rejected: list[tuple[str, str]] = []  # (call id, outcome)


@asynccontextmanager
async def running_server(**kwargs: Any) -> AsyncIterator[Harness]:
    """A SipServer on a free port whose calls just stay up (the clock sends silence) until they end."""
    harness: Harness

    async def on_call(dialog: Dialog) -> None:
        harness.dialogs.append(dialog)
        await dialog.ended.wait()

    async def on_rejected(call_id: str, caller: str, callee: str, outcome: str) -> None:
        harness.rejected.append((call_id, outcome))

    kwargs.setdefault("ring_seconds", 0)
    kwargs.setdefault("rtp_ports", (31000, 32000))
    server = SipServer("127.0.0.1", free_udp_port(), on_call, on_rejected, **kwargs)
    harness = Harness(server)
    await server.start()
    try:
        yield harness
    finally:
        await server.stop()


async def call(peer: Peer, server_port: int, media_port: int, call_id: str | None = None,
               ack: bool = True) -> tuple[str, sip.SipMessage]:
    """INVITE (and ACK its 200): the call id and the 200."""
    call_id = call_id or f"call-{uuid.uuid4().hex}"
    peer.send(request("INVITE", peer.port, call_id, body=offer(media_port), server_port=server_port), server_port)
    ok = await peer.final("INVITE")
    assert ok.status == 200, ok.to_bytes()
    if ack:
        peer.send(request("ACK", peer.port, call_id, to_tag=sip.tag_of(ok.get("To")), server_port=server_port),
                  server_port)
    return call_id, ok


def media_port_of(answer: sip.SipMessage) -> int:
    line = next(li for li in answer.body.decode().split("\r\n") if li.startswith("m=audio"))
    return int(line.split()[1])
