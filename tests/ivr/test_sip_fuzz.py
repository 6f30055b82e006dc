"""SIP fuzzing, bounded: a fixed corpus of malformed messages and a seeded run of mutations of real
INVITEs, ACKs, BYEs, CANCELs and OPTIONS (a few thousand datagrams, seconds), then a real sipp call
that must still hear its audio at 50 packets/s.

The server runs in this process so the test can hold it to its invariants: the SIP socket never
closes, the media clock never stops, nothing reaches the offered media address of a call that was
never acknowledged, and no packet leaves for an address outside 127.0.0.1 (every send is checked
on its way out; one that would go to a port of ours nobody listens on is dropped there, so stray
answers never reach other programs on this machine).
"""
from __future__ import annotations

import asyncio
import ipaddress
import random
import re
from pathlib import Path
from typing import Any

from hotline.ivr.sip import message as sip
from tests.conftest import eventually
from tests.ivr import sipp
from tests.ivr.sip_harness import Harness, call, offer, open_peer, request, running_server

SEED = 20261127
MUTATIONS = 3000

HOSTILE = [
    "", " ", "\t", "\x00", "\x7f\x01", "A" * 4000, "%s%s%n", "<>", "<<<<", '"', '"unterminated', ",,,", ";;;;",
    "sip:", "sip:@", "sip:x@:5060", "<sip:x@127.0.0.1:70000>", "<sip:x@127.0.0.1:0>", "<sip:x@[::1]:5060>",
    "<sip:x@fuzz.invalid>", "<sip:x@127.0.0.1:99999;lr>", "*", "tel:", "<sips:x@127.0.0.1:65536>",
    "SIP/2.0/UDP 127.0.0.1:99999", "SIP/2.0/UDP 127.0.0.1:0;branch=z9hG4bK1", "SIP/2.0/UDP 127.0.0.1:-5",
    "SIP/2.0/UDP 127.0.0.1;rport=99999", "SIP/2.0/UDP 127.0.0.1;received=fuzz.invalid",
    "SIP/2.0/UDP 127.0.0.1;received=::1", "SIP/2.0/UDP [::1]:5070", "SIP/2.0/UDP fuzz.invalid:5070",
    "SIP/2.0/UDP 127.0.0.1:٥٠٦٠", "SIP/2.0/UDP 127.0.0.1:+1", "SIP/2.0/UDP 0.0.0.0:1;received=0.0.0.0",
    "SIP/2.0/UDP 224.0.0.1:5070", "SIP/2.0/UDP 255.255.255.255:9", "SIP/9.9/XYZ 127.0.0.1",
    "99999999999999999999 INVITE", "-1 INVITE", "1", "1 BYE", "٥ INVITE", "2147483648 INVITE", "0 ACK",
    "999999", "-1", "1e9", "0x10", "65536", "18446744073709551617",
]
NUMBERS = ["0", "-1", "65535", "65536", "70000", "99999", "2147483648", "4294967296", "18446744073709551617",
           "٥", "1e5", "+1", ""]
SDP_LINES = ["m=audio 70000 RTP/AVP 0", "m=audio 0 RTP/AVP 0", "m=audio -1 RTP/AVP 0", "m=audio 4000 RTP/AVP 300",
             "m=audio 4000 RTP/AVP", "m=audio 4000/99999 RTP/AVP 0 101", "c=IN IP4 999.0.0.1",
             "c=IN IP4 fuzz.invalid", "c=IN IP6 ::1", "c=IN IP4 224.0.0.1/127", "c=IN IP4 0.0.0.0", "c=IN IP4",
             "c=", "a=rtpmap:999 telephone-event/8000", "a=rtpmap:101", "m=video 4000 RTP/AVP 96",
             "m=audio 4000 RTP/SAVP 0"]


def corpus(port: int, server_port: int, sink: int) -> list[bytes]:
    """Malformed messages, each one a way a parser or a sendto has been known to fail."""
    good = request("INVITE", port, "corpus-good", body=offer(sink), server_port=server_port)
    head, _, body = good.partition(b"\r\n\r\n")
    out = [
        b"", b"\r\n\r\n", b"\x00" * 64, bytes(range(256)), b"INVITE", b"INVITE sip:x SIP/2.0", b"SIP/2.0 200 OK",
        b"SIP/2.0 999 Weird\r\n\r\n", b"SIP/2.0 abc\r\n\r\n", b"INVITE sip:x SIP/2.0\r\n\r\n",
        b"INVITE sip:x SIP/2.0\r\nVia: \r\nFrom: \r\nTo: \r\nCall-ID: \r\nCSeq: \r\n\r\n",
        head.replace(b"Via:", b"Via :") + b"\r\n\r\n" + body, head.replace(b"\r\n", b"\n") + b"\n\n" + body,
        head.replace(b"\r\n", b"\r") + b"\r\r" + body, head + b"\r\n\r\n" + body[:10],
        head.replace(b"Content-Length: ", b"Content-Length: 9") + b"\r\n\r\n" + body,
        head + b"\r\nContent-Length: 1\r\n\r\n" + body, head + b"\r\n" + b"X-Pad: y\r\n" * 300 + b"\r\n" + body,
        head + b"\r\n" + b"Via: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bK\r\n" * 100 + b"\r\n" + body,
        head + b"\r\nX-Big: " + b"x" * 60000 + b"\r\n\r\n", good.replace(b"INVITE sip", b"INVITE  sip"),
        good.replace(b"SIP/2.0\r\n", b"SIP/2.1\r\n", 1), good.replace(b"sip:12345", b"sip:\xff\xfe"),
        f"INVITE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port}\r\nFrom: 中文\r\nTo: 中文\r\nCall-ID: 中文\r\n"
        "CSeq: 1 INVITE\r\n\r\n".encode(), good.replace(b"\r\n", b"\r\n ", 3),
        good.replace(b"To: <sip:12345@127.0.0.1>", b"To: <sip:12345@127.0.0.1>;tag="),
        good.replace(b"CSeq: 1 INVITE", b"CSeq: 1 INVITE\r\nCSeq: 2 INVITE"),
        good.replace(b"Call-ID: corpus-good", b"Call-ID: " + b"c" * 300),
        good.replace(b"Call-ID: corpus-good", b"Call-ID: a b"),
    ]
    for value in HOSTILE:
        for header in ("Via", "Contact", "CSeq", "Content-Length", "From", "To", "Call-ID", "Record-Route"):
            out.append(_replace_header(good, header, value, f"corpus-{header}-{len(out)}"))
    for line in SDP_LINES:
        kind = line[:2]
        text = good.decode()
        lines = [line if li.startswith(kind) else li for li in text.split("\r\n")]
        out.append(_fix_length("\r\n".join(lines).replace("corpus-good", f"corpus-sdp-{len(out)}").encode()))
    return out


def _replace_header(data: bytes, name: str, value: str, call_id: str) -> bytes:
    text = data.decode(errors="replace").replace("Call-ID: corpus-good", f"Call-ID: {call_id}")
    return re.sub(rf"(?m)^{re.escape(name)}: [^\r\n]*", lambda _: f"{name}: {value}", text, count=1).encode(
        "utf-8", errors="replace")


def _fix_length(data: bytes) -> bytes:
    head, sep, body = data.partition(b"\r\n\r\n")
    return re.sub(rb"Content-Length: \d+", b"Content-Length: %d" % len(body), head) + sep + body


def mutate(rng: random.Random, base: bytes) -> bytes:
    """One to three mutations: header values from the hostile list, numbers at their limits, SDP
    lines swapped, headers dropped or doubled, bytes flipped, inserted or cut, CRLF changed."""
    data = base
    for _ in range(rng.randint(1, 3)):
        kind = rng.randrange(9)
        lines = data.split(b"\r\n")
        if kind == 0 and len(lines) > 2:
            i = rng.randrange(1, len(lines))
            name = lines[i].split(b":", 1)[0]
            lines[i] = name + b": " + rng.choice(HOSTILE).encode("utf-8", errors="replace")
        elif kind == 1:
            numbers = list(re.finditer(rb"\d+", data))
            if numbers:
                m = rng.choice(numbers)
                data = data[:m.start()] + rng.choice(NUMBERS).encode() + data[m.end():]
                continue
        elif kind == 2 and len(lines) > 2:
            del lines[rng.randrange(1, len(lines))]
        elif kind == 3 and len(lines) > 2:
            i = rng.randrange(1, len(lines))
            lines.insert(i, lines[i])
        elif kind == 4 and data:
            i = rng.randrange(len(data))
            data = data[:i] + bytes([rng.randrange(256)]) + data[i + 1:]
            continue
        elif kind == 5 and data:
            i = rng.randrange(len(data))
            data = data[:i] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 8))) + data[i:]
            continue
        elif kind == 6 and data:
            data = data[:rng.randrange(len(data))]
            continue
        elif kind == 7:
            sdp = [i for i, li in enumerate(lines) if li[:2] in (b"m=", b"c=", b"a=")]
            if sdp:
                lines[rng.choice(sdp)] = rng.choice(SDP_LINES).encode()
        else:
            data = data.replace(b"\r\n", rng.choice([b"\n", b"\r", b"\r\n\r\n", b"\r\n\t"]), rng.randint(1, 4))
            continue
        data = b"\r\n".join(lines)
        if rng.random() < 0.5:
            data = _fix_length(data)
    return data


_QUAD = re.compile(rb"(?<![\d.])(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?![\d.])")


def stays_local(data: bytes) -> bool:
    """Every IPv4 address the datagram names is loopback or unspecified (or no address at all)."""
    for m in _QUAD.finditer(data):
        octets = [int(g) for g in m.groups()]
        if max(octets) <= 255 and octets[0] not in (127, 0):
            return False
    return True


class Egress:
    """The SIP socket's sendto, watched: nothing may leave for outside 127.0.0.1; answers for ports
    of no socket of ours are dropped here so they reach no other program."""

    def __init__(self, harness: Harness, ours: set[int]) -> None:
        self.ours, self.dropped, self.sent = ours, 0, 0
        self.outside: list[tuple[str, int]] = []
        self.any_local_port = False
        transport = harness.server.transport
        assert transport is not None
        self._sendto = transport.sendto
        transport.sendto = self.sendto  # type: ignore[method-assign]

    def sendto(self, data: Any, addr: Any = None) -> None:
        host = ipaddress.ip_address(addr[0])
        if not host.is_loopback:
            self.outside.append(addr)
        elif addr[1] in self.ours or self.any_local_port:
            self.sent += 1
            self._sendto(data, addr)
        else:
            self.dropped += 1


async def test_fuzzed_sip_leaves_the_ivr_answering_with_audio(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    async with running_server(rtp_ports=(32000, 33000)) as h:
        fuzzer, live, sink, never_acked = await open_peer(), await open_peer(), await open_peer(), await open_peer()
        egress = Egress(h, {fuzzer.port, live.port})
        try:
            # Live dialogs whose in-dialog requests get fuzzed with the right tags.
            dialogs = []
            for _ in range(3):
                call_id, ok = await call(live, h.port, sink.port)
                dialogs.append((call_id, sip.tag_of(ok.get("To"))))
            port, media = fuzzer.port, never_acked.port
            bases = [request("INVITE", port, "", body=offer(media), server_port=h.port),
                     request("ACK", port, "", to_tag="fuzz", server_port=h.port),
                     request("BYE", port, "", to_tag="fuzz", cseq=2, server_port=h.port),
                     request("CANCEL", port, "", server_port=h.port),
                     request("OPTIONS", port, "", server_port=h.port)]
            for call_id, tag in dialogs:
                for method, cseq in (("BYE", 5), ("INFO", 3), ("INVITE", 4), ("NOTIFY", 6)):
                    bases.append(request(method, port, call_id, to_tag=tag, cseq=cseq, server_port=h.port,
                                         body=offer(sink.port) if method == "INVITE" else ""))
            datagrams = [d for d in corpus(port, h.port, media) if stays_local(d)]
            total = len(datagrams) + MUTATIONS
            while len(datagrams) < total:
                base = rng.choice(bases)
                if b"Call-ID: \r\n" in base:  # a fresh call for each mutation of a new-call template
                    base = base.replace(b"Call-ID: \r\n", f"Call-ID: fz-{rng.getrandbits(48):x}\r\n".encode())
                mutated = mutate(rng, base)
                if stays_local(mutated) and len(mutated) < 65000:
                    datagrams.append(mutated)
            for i, data in enumerate(datagrams):
                if data:
                    fuzzer.send(data, h.port)
                if i % 25 == 24:
                    await asyncio.sleep(0.003)  # the server shares this loop: let it read
            await asyncio.sleep(0.5)
            assert h.server.bound() and h.server.rebinds == 0, "the SIP socket closed"
            assert h.server.clock.ticking() and h.server.clock.restarts == 0, "the media clock stopped"
            assert h.server.garbage + h.server.invalid > 200  # counted
            assert egress.outside == [] and egress.sent > 500
            # The calls the fuzz left in setup (their answers went to ports nobody listens on) are never
            # acknowledged, and nobody hangs them up: within setup_slot_seconds of their 200 they stop
            # holding the per-source limit, so the next caller from 127.0.0.1 is answered.
            assert await eventually(lambda: not h.server.in_setup, seconds=h.server.setup_slot_seconds + 5), \
                f"calls still in setup: {dict(h.server.in_setup)}"
            assert never_acked.packets_in == 0, "RTP went to the media address of a call nobody acknowledged"

            egress.any_local_port = True  # sipp's port is not known in advance
            result, heard = await asyncio.to_thread(
                sipp.call, f"127.0.0.1:{h.port}", sipp.scenario("", caller="13000139999", hang_up_after_ms=3000),
                tmp_path, 60)
            assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
            assert heard.payload_types == {0} and 49 <= heard.packets_per_second() <= 51
            assert len(heard.arrivals) >= 5 * 45 and heard.worst_gap_ms() < 100
            assert h.server.healthy() and h.server.clock.failed_sessions == 0
            print(f"\n{len(datagrams)} datagrams: garbage {h.server.garbage}, invalid {h.server.invalid}, "
                  f"busy {h.server.busy}, answers sent {egress.sent}, dropped at the test's egress {egress.dropped}")
        finally:
            for p in (fuzzer, live, sink, never_acked):
                p.close()


def test_the_fuzz_corpus_and_mutations_are_fixed_by_the_seed() -> None:
    rng_a, rng_b = random.Random(SEED), random.Random(SEED)
    base = request("INVITE", 5000, "x", body=offer(4000))
    assert [mutate(rng_a, base) for _ in range(50)] == [mutate(rng_b, base) for _ in range(50)]
    assert not stays_local(b"c=IN IP4 10.1.2.3") and stays_local(b"c=IN IP4 127.0.0.1 999.1.1.1")
