"""SIP input is data: values checked where parsed, no datagram or call can silence the IVR, trunk
mode has an allow-list, no RTP before ACK, a per-source setup limit, health that tells the truth.

Each of the issue's cases is here as it was reported (Via port 99999; m=audio 70000; 300
unacknowledged INVITEs) and would fail on the code before the hardening. All on 127.0.0.1."""
from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct
import uuid

import pytest

from hotline.ivr.sip import message as sip
from hotline.ivr.sip import rtp, sdp
from hotline.ivr.sip.addresses import PeerPolicy, Resolver, parse_networks, sendable
from tests.conftest import eventually
from tests.ivr.sip_harness import Peer, call, media_port_of, offer, open_peer, request, running_server


async def _hears_rtp(sink: Peer, seconds: float = 0.6) -> int:
    """Packets the sink got in `seconds`, all 172-byte PCMU frames."""
    before = sink.packets_in
    sink.drain()
    await asyncio.sleep(seconds)
    got = sink.drain()
    assert all(len(p) == 172 and p[1] & 0x7F == 0 for p in got)
    return sink.packets_in - before


# --- point 1: an INVITE whose Via says port 99999 ------------------------------------------------------

async def test_via_port_99999_gets_400_and_the_next_call_is_answered() -> None:
    async with running_server() as h:
        peer, sink = await open_peer(), await open_peer()
        try:
            bad_via = "SIP/2.0/UDP 127.0.0.1:99999;branch=z9hG4bKx99999"  # no rport: the old code sent there
            for method in ("INVITE", "OPTIONS", "BYE"):  # BYE: the 481 path of the issue
                peer.send(request(method, peer.port, f"v-{method}", via=bad_via,
                                  body=offer(sink.port) if method == "INVITE" else "", server_port=h.port), h.port)
                answer = await peer.final(method)
                assert answer.status == 400 and "99999" in answer.get("Warning")
            assert h.server.bound() and h.server.invalid == 3 and h.server.unsendable == 0
            _, ok = await call(peer, h.port, sink.port)  # a normal call still gets its 200 and its audio
            assert ok.status == 200
            assert 20 <= await _hears_rtp(sink) <= 40
            assert h.server.healthy()
        finally:
            peer.close()
            sink.close()


@pytest.mark.parametrize("via", [
    "SIP/2.0/UDP 127.0.0.1:0;branch=z9hG4bK1", "SIP/2.0/UDP 127.0.0.1:-1;branch=z9hG4bK1",
    "SIP/2.0/UDP 127.0.0.1:5060;received=999.1.1.1", "SIP/2.0/UDP 127.0.0.1;rport=70000",
    "SIP/2.0/UDP a\x01b;branch=z9hG4bK1", "SIP/2.0/UDP [::1:5060", "SIP/2.0/UDP 127.0.0.1:٥٠٦٠",
    "SIP/2.0/UDP 127.0.0.1:+5060", "SIP/3.0/UDP 127.0.0.1", "SIP/2.0/UDP ", "garbage"])
def test_an_invalid_top_via_is_refused_where_it_is_parsed(via: str) -> None:
    data = request("OPTIONS", 5000, "via-1", via=via)
    with pytest.raises(sip.SipInvalid) as refused:
        sip.parse(data)
    assert refused.value.message.method == "OPTIONS"  # enough to answer 400 at the source


@pytest.mark.parametrize("change", [
    ("CSeq: 1 OPTIONS", "CSeq: 1 INVITE"), ("CSeq: 1 OPTIONS", "CSeq: 99999999999 OPTIONS"),
    ("CSeq: 1 OPTIONS", "CSeq: +1 OPTIONS"), ("Content-Length: 0", "Content-Length: 500"),
    ("Content-Length: 0", "Content-Length: 0\r\nContent-Length: 7"), ("Content-Length: 0", "Content-Length: -1"),
    ("Call-ID: x", "Call-ID: " + "x" * 300)])
def test_cseq_content_length_and_call_id_are_checked(change: tuple[str, str]) -> None:
    data = request("OPTIONS", 5000, "x").decode().replace(*change).encode()
    with pytest.raises(sip.SipInvalid):
        sip.parse(data)


@pytest.mark.parametrize("header", ["Contact: <sip:p@127.0.0.1:70000>", "Record-Route: <sip:127.0.0.1:0;lr>",
                                    "Record-Route: <sip:p@127.0.0.1;lr>, <sip:x@bad host;lr>"])
def test_contact_and_record_route_of_an_invite_are_checked(header: str) -> None:
    data = request("INVITE", 5000, "c-1", body=offer(4000)).decode()
    data = data.replace("Contact: <sip:p@127.0.0.1:5000>", header) if header.startswith("Contact") else \
        data.replace("Max-Forwards", header + "\r\nMax-Forwards")
    with pytest.raises(sip.SipInvalid):
        sip.parse(data.encode())


def test_record_route_lists_are_split_and_sendable_refuses_what_would_close_a_socket() -> None:
    data = request("INVITE", 5000, "rr", body=offer(4000)).decode().replace(
        "Max-Forwards", "Record-Route: <sip:10.0.0.1;lr>, <sip:10.0.0.2;lr>\r\nMax-Forwards")
    assert sip.parse(data.encode()).get_all("Record-Route") == ["<sip:10.0.0.1;lr>", "<sip:10.0.0.2;lr>"]
    assert sendable(("127.0.0.1", 5060)) == ("127.0.0.1", 5060)
    for bad in [("127.0.0.1", 99999), ("127.0.0.1", 0), ("a\x00b", 5), ("pbx.example", 5060), ("::1", 5060),
                ("0.0.0.0", 5060), ("224.0.0.1", 5060), ("255.255.255.255", 9), ("127.0.0.1", True), None]:
        assert sendable(bad) is None, bad  # type: ignore[arg-type]
    assert sendable(("127.0.0.1", 5060), socket.AF_INET6) == ("::ffff:127.0.0.1", 5060)


# --- point 2: an SDP that says m=audio 70000 ------------------------------------------------------------

@pytest.mark.parametrize("body,error", [
    (offer(70000), sdp.InvalidOffer), (offer("5000x"), sdp.InvalidOffer),
    (offer(4000, formats="0 300"), sdp.InvalidOffer),
    (offer(4000, address="999.0.0.1"), sdp.InvalidOffer), (offer(4000, address="a\x00b"), sdp.InvalidOffer),
    (offer(0), sdp.NotAcceptable), (offer(4000, address="0.0.0.0"), sdp.NotAcceptable),
    (offer(4000, address="224.0.0.1"), sdp.NotAcceptable), (offer(4000, address="255.255.255.255"), sdp.NotAcceptable),
    (offer(4000).replace("RTP/AVP", "RTP/SAVP"), sdp.NotAcceptable)])
def test_every_value_of_an_offer_is_checked(body: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        sdp.parse_offer(body.encode())


async def test_sdp_port_70000_gets_400_and_another_call_still_hears_rtp() -> None:
    async with running_server() as h:
        peer, sink = await open_peer(), await open_peer()
        try:
            peer.send(request("INVITE", peer.port, "m70000", body=offer(70000), server_port=h.port), h.port)
            refused = await peer.final("INVITE")
            assert refused.status == 400 and "70000" in refused.get("Warning")
            await call(peer, h.port, sink.port)
            assert 20 <= await _hears_rtp(sink) <= 40
            assert h.server.clock.ticking() and h.server.invalid == 1
        finally:
            peer.close()
            sink.close()


async def test_a_call_whose_media_fails_is_ended_as_failed_and_the_clock_goes_on() -> None:
    async with running_server() as h:
        peer, sink_a, sink_b = await open_peer(), await open_peer(), await open_peer()
        try:
            await call(peer, h.port, sink_a.port)
            await call(peer, h.port, sink_b.port)
            await asyncio.sleep(0.2)
            broken = next(d for d in h.dialogs if d.media.remote == ("127.0.0.1", sink_a.port))
            assert broken.media.transport is not None
            broken.media.transport.close()  # as asyncio does after a fatal send error
            bye = await peer.request_in("BYE")
            assert bye.call_id == broken.call_id and "media failure" in bye.get("Reason")
            assert broken.failed and broken.ended.is_set()
            assert 20 <= await _hears_rtp(sink_b) <= 40  # the other call hears on
            assert h.server.clock.failed_sessions == 1 and h.server.healthy()
        finally:
            for s in (peer, sink_a, sink_b):
                s.close()


async def test_the_clock_survives_a_session_that_raises_and_restarts_if_it_ends() -> None:
    clock = rtp.MediaClock()
    good, bad = rtp.RtpSession(0, None, lambda k: None), rtp.RtpSession(0, None, lambda k: None)
    ticks: list[int] = []
    failures: list[Exception] = []
    good.tick = lambda: ticks.append(1)  # type: ignore[method-assign]
    def broken() -> None:
        raise OSError("sendto failed")

    bad.tick = broken  # type: ignore[method-assign]
    bad.on_failure = failures.append
    clock.sessions |= {good, bad}
    clock.start()
    try:
        await asyncio.sleep(0.2)
        assert bad not in clock.sessions and len(failures) == 1 and len(ticks) >= 5
        assert clock._task is not None
        clock._task.cancel()  # the clock ending by itself: it is started again
        await asyncio.sleep(0.1)
        assert clock.restarts == 1 and clock.ticking()
    finally:
        await clock.stop()
    assert not clock.ticking(0.0)


# --- point 7: amplification -------------------------------------------------------------------------

async def test_a_peer_not_on_the_allow_list_gets_403_and_nothing_else() -> None:
    policy = PeerPolicy(parse_networks("192.0.2.10, 198.51.100.0/24"))  # 127.0.0.1 is not on it
    async with running_server(policy=policy) as h:
        peer, sink = await open_peer(), await open_peer()
        try:
            for method in ("INVITE", "OPTIONS", "BYE"):
                peer.send(request(method, peer.port, f"n-{method}", body=offer(sink.port) if method == "INVITE" else "",
                                  server_port=h.port), h.port)
                assert (await peer.final(method)).status == 403
            peer.send(request("ACK", peer.port, "n-INVITE", to_tag="x", server_port=h.port), h.port)
            bad = request("INVITE", peer.port, "n-bad", via="SIP/2.0/UDP 127.0.0.1:99999", server_port=h.port)
            peer.send(bad, h.port)
            assert (await peer.final("INVITE")).status == 403
            await asyncio.sleep(0.3)
            assert peer.drain() == [] and sink.packets_in == 0  # one answer each, no 100/180/200, no media
            assert h.server.refused == 5 and not h.server.dialogs and not h.rejected
        finally:
            peer.close()
            sink.close()


def test_the_allow_list_takes_addresses_and_networks_not_names() -> None:
    policy = PeerPolicy(parse_networks("10.1.2.3, 192.168.0.0/16, ::1"))
    assert policy.allows("10.1.2.3") and policy.allows("192.168.7.7") and policy.allows("::1")
    assert not policy.allows("10.1.2.4") and not policy.allows("127.0.0.1") and not policy.allows("garbage")
    assert policy.allows("::ffff:10.1.2.3")  # an IPv4 peer seen on an IPv6 socket
    policy.add(ipaddress.ip_network("127.0.0.1/32"))
    assert policy.allows("127.0.0.1")
    with pytest.raises(ValueError, match="pbx.example"):
        parse_networks("10.0.0.1, pbx.example")


async def test_no_rtp_reaches_the_offered_address_before_the_ack() -> None:
    async with running_server() as h:
        peer, sink = await open_peer(), await open_peer()
        try:
            call_id, ok = await call(peer, h.port, sink.port, ack=False)
            await asyncio.sleep(1.0)  # 200 retransmissions, but not a single RTP packet
            assert sink.packets_in == 0
            peer.send(request("ACK", peer.port, call_id, to_tag="guessed", server_port=h.port), h.port)
            await asyncio.sleep(0.3)
            assert sink.packets_in == 0  # an ACK without our tag does not count
            peer.send(request("ACK", peer.port, call_id, to_tag=sip.tag_of(ok.get("To")), server_port=h.port), h.port)
            assert 20 <= await _hears_rtp(sink) <= 40
        finally:
            peer.close()
            sink.close()


async def test_symmetric_rtp_from_the_offered_address_releases_media_before_the_ack() -> None:
    async with running_server() as h:
        peer, sink = await open_peer(), await open_peer()
        try:
            _, ok = await call(peer, h.port, sink.port, ack=False)
            await asyncio.sleep(0.2)
            assert sink.packets_in == 0
            assert sink.transport is not None
            stranger = await open_peer()  # RTP from elsewhere releases nothing
            stranger.send(struct.pack("!BBHII", 0x80, 0, 1, 160, 9) + b"\xff" * 160, media_port_of(ok))
            await asyncio.sleep(0.2)
            assert sink.packets_in == 0
            stranger.close()
            sink.send(struct.pack("!BBHII", 0x80, 0, 1, 160, 9) + b"\xff" * 160, media_port_of(ok))
            assert 20 <= await _hears_rtp(sink) <= 40
        finally:
            peer.close()
            sink.close()


async def test_calls_in_setup_are_limited_per_source() -> None:
    async with running_server(max_setup_per_source=3) as h:
        peer, sink = await open_peer(), await open_peer()
        try:
            ids = [f"setup-{i}-{uuid.uuid4().hex[:6]}" for i in range(5)]
            for call_id in ids:
                peer.send(request("INVITE", peer.port, call_id, body=offer(sink.port), server_port=h.port), h.port)
            finals: dict[str, sip.SipMessage] = {}
            while len(finals) < 5:
                answer = await peer.final("INVITE")
                finals.setdefault(answer.call_id, answer)
            statuses = sorted(a.status for a in finals.values())
            assert statuses == [200, 200, 200, 486, 486] and h.server.busy == 2
            assert sum(h.server.in_setup.values()) == 3
            ok = next(a for a in finals.values() if a.status == 200)  # one ACK frees one place
            peer.send(request("ACK", peer.port, ok.call_id, to_tag=sip.tag_of(ok.get("To")), server_port=h.port),
                      h.port)
            await asyncio.sleep(0.05)
            assert sum(h.server.in_setup.values()) == 2
            await call(peer, h.port, sink.port)
            busy = next(a for a in finals.values() if a.status == 486)  # its retransmission: the same 486
            peer.send(request("INVITE", peer.port, busy.call_id, body=offer(sink.port), server_port=h.port), h.port)
            assert (await peer.final("INVITE")).status == 486
            assert not any(outcome for _, outcome in h.rejected)  # a flood is counted, not recorded as calls
        finally:
            peer.close()
            sink.close()


async def test_unacknowledged_invites_give_the_callers_behind_their_address_back_within_seconds() -> None:
    """Ten INVITEs never ACKed (a burst of mutated datagrams, or someone posing as the trunk) held every
    caller from that address at 486 until their transactions ran out; now only for setup_slot_seconds."""
    async with running_server(max_setup_per_source=10, setup_slot_seconds=1.0) as h:
        attacker, phone, sink = await open_peer(), await open_peer(), await open_peer()
        try:
            for i in range(10):
                attacker.send(request("INVITE", attacker.port, f"unacked-{i}", body=offer(sink.port),
                                      server_port=h.port), h.port)
            answered = set()
            while len(answered) < 10:
                answer = await attacker.final("INVITE")
                assert answer.status == 200
                answered.add(answer.call_id)
            phone.send(request("INVITE", phone.port, "too-soon", body=offer(sink.port), server_port=h.port), h.port)
            assert (await phone.final("INVITE")).status == 486  # the limit still holds while they are in setup
            began = asyncio.get_running_loop().time()
            while h.server.in_setup:
                assert asyncio.get_running_loop().time() - began < 3, "the setup places were not given back"
                await asyncio.sleep(0.02)
            _, ok = await call(phone, h.port, sink.port)  # a real caller from the same address: answered
            assert ok.status == 200 and await eventually(lambda: len(h.dialogs) == 1)  # and its call runs
            # The unacknowledged transactions go on as RFC 3261 says: their 200 is sent again.
            attacker.drain()
            again = await attacker.final("INVITE")
            assert again.status == 200 and again.call_id in answered
            assert all(d.acked.is_set() is False for d in h.server.dialogs.values() if d.call_id in answered)
        finally:
            for p in (attacker, phone, sink):
                p.close()


async def test_a_trunk_sets_up_many_callers_at_once_from_one_address() -> None:
    """Every caller behind a trunk arrives from its one address: forty at once all hear the IVR."""
    async with running_server() as h:  # the server's own default limit, the same as [sip]'s
        trunk, sink = await open_peer(), await open_peer()
        try:
            for i in range(40):
                trunk.send(request("INVITE", trunk.port, f"trunk-{i}", body=offer(sink.port), server_port=h.port),
                           h.port)
            statuses = {}
            while len(statuses) < 40:
                answer = await trunk.final("INVITE")
                statuses.setdefault(answer.call_id, answer.status)
            assert set(statuses.values()) == {200} and h.server.busy == 0
        finally:
            trunk.close()
            sink.close()


def test_the_configured_setup_limits_are_the_servers_defaults() -> None:
    from hotline.config import SipConfig
    from hotline.ivr.sip.server import MAX_SETUP_PER_SOURCE, SETUP_SLOT_SECONDS
    assert (SipConfig().max_setup_per_source, SipConfig().setup_slot_seconds) == (MAX_SETUP_PER_SOURCE,
                                                                                   SETUP_SLOT_SECONDS)


# --- host names, health ---------------------------------------------------------------------------

async def test_host_names_are_refused_or_resolved_once_off_the_loop() -> None:
    named_via = "SIP/2.0/UDP localhost:{port};branch=z9hG4bKname"
    async with running_server() as h:  # resolve_hostnames = false
        peer = await open_peer()
        try:
            peer.send(request("OPTIONS", peer.port, "name-1", via=named_via.format(port=peer.port),
                              server_port=h.port), h.port)
            assert (await peer.final("OPTIONS")).status == 400  # to the source: we would not resolve
            peer.send(request("INVITE", peer.port, "name-2", body=offer(4000, address="localhost"),
                              server_port=h.port), h.port)
            assert (await peer.final("INVITE")).status == 488
        finally:
            peer.close()
    async with running_server(resolver=Resolver(enabled=True)) as h:
        peer, sink = await open_peer(), await open_peer()
        try:
            peer.send(request("OPTIONS", peer.port, "name-3", via=named_via.format(port=peer.port),
                              server_port=h.port), h.port)
            assert (await peer.final("OPTIONS")).status == 200  # localhost → 127.0.0.1, from /etc/hosts
            assert h.server.resolver.cached("localhost") == "127.0.0.1"
            peer.send(request("INVITE", peer.port, "name-4", body=offer(sink.port, address="localhost"),
                              server_port=h.port), h.port)
            ok = await peer.final("INVITE")
            peer.send(request("ACK", peer.port, "name-4", to_tag=sip.tag_of(ok.get("To")), server_port=h.port),
                      h.port)
            assert 20 <= await _hears_rtp(sink) <= 40
        finally:
            peer.close()
            sink.close()


async def test_health_is_up_only_while_the_socket_is_bound_and_the_clock_ticks() -> None:
    async with running_server() as h:
        assert h.server.healthy()
        assert h.server.transport is not None
        h.server.transport.close()  # as asyncio does after a fatal error: the socket is bound again
        assert not h.server.bound() and not h.server.healthy()
        for _ in range(100):
            if h.server.bound():
                break
            await asyncio.sleep(0.02)
        assert h.server.healthy() and h.server.rebinds == 1
        peer = await open_peer()
        try:
            peer.send(request("OPTIONS", peer.port, "after-rebind", server_port=h.port), h.port)
            assert (await peer.final("OPTIONS")).status == 200
        finally:
            peer.close()
        await h.server.clock.stop()
        assert not h.server.healthy()
