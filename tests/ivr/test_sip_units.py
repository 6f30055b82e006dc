"""The SIP and RTP details where pyVoIP 1.6.8 goes wrong (../shared/notes/pyvoip-1.6.8.md), one by one."""
from __future__ import annotations

import asyncio
import math
import socket
import struct

import pytest

from hotline.ivr.sip import message as sip
from hotline.ivr.sip import rtp, sdp
from hotline.ivr.sip.server import SipServer
from tests.conftest import eventually

INVITE = (b"INVITE sip:12345@127.0.0.1:5060 SIP/2.0\r\n"
          b"v: SIP/2.0/UDP 10.0.0.7:5062;branch=z9hG4bKabc;rport, SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKdef\r\n"
          b"f: \"Zhang\" <sip:13800138000@10.0.0.7>;tag=a1\r\nt: <sip:12345@127.0.0.1>\r\n"
          b"i: call-1@10.0.0.7\r\nCSeq: 1 INVITE\r\nm: <sip:13800138000@10.0.0.7:5062>\r\n"
          b"Supported:\r\nSubject: a folded\r\n  header\r\nc: application/sdp\r\nl: 0\r\n\r\n")


def test_an_empty_header_and_compact_forms_do_not_lose_the_call() -> None:
    msg = sip.parse(INVITE)
    assert msg.method == "INVITE" and msg.call_id == "call-1@10.0.0.7" and msg.cseq == (1, "INVITE")
    assert len(msg.get_all("Via")) == 2 and msg.get("Supported") == "" and msg.get("Subject") == "a folded header"
    assert sip.user_of(msg.get("From")) == "13800138000"


def test_responses_go_where_the_via_says_not_to_a_configured_server() -> None:
    via = sip.parse(INVITE).get_all("Via")[0]
    assert sip.via_destination(via, ("192.0.2.9", 40000)) == ("192.0.2.9", 40000)  # rport: the source
    assert sip.via_destination("SIP/2.0/UDP 10.0.0.7:5062;branch=x;received=192.0.2.5", ("1.1.1.1", 1)) == (
        "192.0.2.5", 5062)
    assert sip.via_destination("SIP/2.0/UDP pbx.example;branch=x", ("1.1.1.1", 1)) == ("pbx.example", 5060)


def test_the_response_copies_every_via_and_adds_our_tag() -> None:
    response = sip.response(sip.parse(INVITE), 180, to_tag="ivr1")
    data = response.to_bytes().decode()
    assert data.startswith("SIP/2.0 180 Ringing\r\n") and data.count("\r\nVia: ") == 2
    assert "To: <sip:12345@127.0.0.1>;tag=ivr1\r\n" in data


@pytest.mark.parametrize("junk", [b"", b"hello", b"SIP/2.0 abc\r\n\r\n", b"INVITE sip:x SIP/2.0\r\nVia: x\r\n\r\n",
                                  b"INVITE sip:x SIP/2.0\r\nno colon here\r\n\r\n", b"\xff\xfe" * 10,
                                  INVITE.replace(b"CSeq: 1 INVITE", b"CSeq: one INVITE")])
def test_garbage_is_refused_by_the_parser(junk: bytes) -> None:
    with pytest.raises(sip.SipParseError):
        sip.parse(junk)


def _offer(formats: str, extra: str = "") -> bytes:
    return (f"v=0\r\no=- 1 1 IN IP4 10.0.0.7\r\ns=-\r\nc=IN IP4 10.0.0.7\r\nt=0 0\r\n"
            f"m=audio 4000 RTP/AVP {formats}\r\na=rtpmap:101 telephone-event/8000\r\n{extra}").encode()


def test_only_g711_is_accepted_pcmu_first() -> None:
    assert sdp.parse_offer(_offer("8 0 101")) == sdp.Offer("10.0.0.7", 4000, 0, 101)
    assert sdp.parse_offer(_offer("8")).payload_type == 8
    with pytest.raises(sdp.NoCommonCodec):
        sdp.parse_offer(_offer("18 9 101"))
    with pytest.raises(ValueError):
        sdp.parse_offer(b"")
    answer = sdp.answer(sdp.parse_offer(_offer("8 101")), "127.0.0.1", 20002).decode()
    assert "m=audio 20002 RTP/AVP 8 101" in answer and "a=rtpmap:8 PCMA/8000" in answer


def test_pcma_is_encoded_with_a_law_not_mu_law() -> None:
    tone = b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / 8000))) for i in range(800))
    alaw = rtp.encode(tone, 8)
    assert alaw != rtp.encode(tone, 0)
    decoded = struct.unpack("<800h", rtp.decode(alaw, 8))
    original = struct.unpack("<800h", tone)
    assert max(abs(a - b) for a, b in zip(decoded, original, strict=True)) < 300  # A-law's step at this level


def _event(key: int, timestamp: int, end: bool, seq: int) -> bytes:
    return struct.pack("!BBHII", 0x80, 101, seq, timestamp, 7) + bytes([key, 0x80 if end else 0, 0, 160])


def test_a_key_is_heard_once_and_a_replayed_capture_counts_again() -> None:
    heard: list[str] = []
    session = rtp.RtpSession(0, 101, heard.append)
    press = [_event(5, 1000, False, 1), _event(5, 1000, False, 2), _event(5, 1000, True, 3),
             _event(5, 1000, True, 4), _event(5, 1000, True, 5)]
    for packet in press + press:  # the same capture twice: the same key pressed twice
        session.datagram_received(packet, ("10.0.0.7", 4000))
    session.datagram_received(_event(11, 2000, False, 6), ("10.0.0.7", 4000))
    session.datagram_received(_event(16, 3000, False, 7), ("10.0.0.7", 4000))  # flash: not a key
    session.datagram_received(b"\x80\x65\x00", ("10.0.0.7", 4000))  # truncated
    assert heard == ["5", "5", "#"]


async def test_a_reinvite_keeps_one_media_stream_and_no_free_port_means_503() -> None:
    calls: list[object] = []
    rejected: list[str] = []

    async def on_call(dialog) -> None:  # type: ignore[no-untyped-def]
        calls.append(dialog)
        await dialog.ended.wait()

    async def on_rejected(call_id: str, caller: str, callee: str, outcome: str) -> None:
        rejected.append(outcome)

    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    busy.bind(("127.0.0.1", 0))
    busy_port = busy.getsockname()[1]
    server = SipServer("127.0.0.1", port, on_call, on_rejected, rtp_ports=(30000, 30010), ring_seconds=0)
    await server.start()
    loop = asyncio.get_running_loop()
    replies: asyncio.Queue[bytes] = asyncio.Queue()

    class Peer(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr) -> None:  # type: ignore[no-untyped-def]
            replies.put_nowait(data)

    transport, _ = await loop.create_datagram_endpoint(Peer, local_addr=("127.0.0.1", 0))
    me = transport.get_extra_info("sockname")[1]

    def request(method: str, cseq: int, to_tag: str = "", body: bytes = b"", call_id: str = "re-1") -> bytes:
        tag = ";tag=" + to_tag if to_tag else ""
        head = (f"{method} sip:ivr@127.0.0.1:{port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK{cseq}{method}\r\n"
                f"From: <sip:13800138000@127.0.0.1>;tag=p1\r\nTo: <sip:ivr@127.0.0.1>{tag}\r\n"
                f"Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContact: <sip:p@127.0.0.1:{me}>\r\n")
        if body:
            head += "Content-Type: application/sdp\r\n"
        return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body

    async def final(method: str) -> sip.SipMessage:
        while True:
            msg = sip.parse(await asyncio.wait_for(replies.get(), 5))
            if not msg.is_request and msg.status >= 200 and msg.cseq[1] == method:
                return msg

    try:
        offer = _offer("0 101").replace(b"10.0.0.7", b"127.0.0.1").replace(b"4000", str(busy_port).encode())
        transport.sendto(request("INVITE", 1, body=offer), ("127.0.0.1", port))
        ok = await final("INVITE")
        tag = sip.tag_of(ok.get("To"))
        transport.sendto(request("ACK", 1, tag), ("127.0.0.1", port))
        assert await eventually(lambda: len(calls) == 1)  # the ACK confirmed the call: the flow has it
        transport.sendto(request("INVITE", 2, tag, body=offer), ("127.0.0.1", port))
        again = await final("INVITE")
        assert again.status == 200
        media_port = lambda m: [li for li in m.body.decode().split("\r\n") if li.startswith("m=")][0]  # noqa: E731
        assert media_port(again) == media_port(ok)
        assert len(server.clock.sessions) == 1 and len(calls) == 1  # one transmitter, 50 packets/s
        transport.sendto(request("BYE", 3, tag), ("127.0.0.1", port))
        assert (await final("BYE")).status == 200

        # Every port of a tiny range taken: the caller hears 503, and the call is recorded as failed.
        holders = []
        for p in range(30000, 30010, 2):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", p))
            holders.append(s)
        transport.sendto(request("INVITE", 1, body=offer, call_id="full-1"), ("127.0.0.1", port))
        assert (await final("INVITE")).status == 503
        assert await eventually(lambda: rejected == ["failed"]), rejected  # recorded once its task ran
        for s in holders:
            s.close()
    finally:
        transport.close()
        busy.close()
        await server.stop()
