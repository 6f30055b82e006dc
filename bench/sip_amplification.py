"""SIP amplification (run by hand): bytes the IVR sends per byte it receives, for 300 INVITEs from one
source that are never acknowledged.

Two runs against the real service, one source socket on 127.0.0.1 each:
  - not allowed: [sip] allowed_peers does not list 127.0.0.1 (every INVITE gets one 403);
  - allowed: the default allow-list (loopback), so the INVITEs are calls: the first
    max_setup_per_source get 100, 180 and a 200 that RFC 3261 retransmits until 64*T1 and then a BYE,
    the rest get 486.
Every INVITE's Via (rport) and Contact name the source socket and its SDP names a sink socket here,
so everything the IVR sends because of them arrives at one of the two: SIP answers at the source,
RTP at the sink. The run waits until the IVR has been quiet for 6 s after its last possible BYE.

    .venv/bin/python bench/sip_amplification.py [--invites 300] [--rate 100]
"""
from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.ivr import sipp
from tests.service_process import ServiceProcess


class Counted:
    """A UDP socket on 127.0.0.1 that counts what arrives (bytes, packets, SIP status codes)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.bytes = self.packets = 0
        self.last = time.monotonic()
        self.kinds: Counter[str] = Counter()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                data = self.sock.recv(65535)
            except (TimeoutError, OSError):
                continue
            self.bytes += len(data)
            self.packets += 1
            self.last = time.monotonic()
            if data.startswith(b"SIP/2.0 "):
                self.kinds[data[8:11].decode(errors="replace")] += 1
            elif data[:1] and data[0] >> 6 == 2:
                self.kinds["RTP"] += 1
            else:
                self.kinds[data.split(b" ", 1)[0].decode(errors="replace")[:10]] += 1

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)
        self.sock.close()


def invite(source: int, sink: int, server: int) -> bytes:
    call_id = uuid.uuid4().hex
    body = (f"v=0\r\no=bench 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {sink} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
            f"a=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n")
    head = (f"INVITE sip:12345@127.0.0.1:{server} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{source};branch=z9hG4bK{call_id[:16]};rport\r\n"
            f"From: <sip:13800138000@127.0.0.1>;tag={call_id[16:24]}\r\nTo: <sip:12345@127.0.0.1>\r\n"
            f"Call-ID: {call_id}@bench\r\nCSeq: 1 INVITE\r\nContact: <sip:13800138000@127.0.0.1:{source}>\r\n"
            f"Max-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n")
    return (head + body).encode()


def measure(var: Path, allowed: bool, invites: int, rate: float, seed: bool) -> dict[str, object]:
    port = sipp.free_udp_port()
    env = {"HOTLINE_SIP_ENABLED": "true", "HOTLINE_SIP_PORT": str(port)}
    if not allowed:
        env["HOTLINE_SIP_ALLOWED_PEERS"] = "192.0.2.1"  # TEST-NET-1: not 127.0.0.1, nothing is ever sent there
    svc = ServiceProcess(var, "bench", bot=False, seed_accounts=20, env=env)
    svc.start(seed=seed)
    source, sink = Counted(), Counted()
    sent = 0
    try:
        t0 = time.monotonic()
        for i in range(invites):
            data = invite(source.port, sink.port, port)
            source.sock.sendto(data, ("127.0.0.1", port))
            sent += len(data)
            time.sleep(max(0.0, t0 + (i + 1) / rate - time.monotonic()))
        settle = 45.0 if allowed else 3.0  # 64*T1 of 200s, then the BYE's 8*T1
        while time.monotonic() - t0 < settle or time.monotonic() - max(source.last, sink.last) < 6:
            time.sleep(0.5)
        health = svc.api("/healthz")["components"]["sip"]
    finally:
        source.close()
        sink.close()
        svc.stop()
    received = source.bytes + sink.bytes
    return {
        "source": "allowed (loopback, the default allow-list)" if allowed else "not allowed (allowed_peers=192.0.2.1)",
        "invites": invites, "bytes_received_by_ivr": sent, "bytes_sent_by_ivr": received,
        "amplification": round(received / sent, 2), "sip_bytes": source.bytes, "rtp_bytes": sink.bytes,
        "answers": dict(source.kinds), "rtp_packets": sink.kinds.get("RTP", 0),
        "health": {k: health.get(k) for k in ("up", "refused", "busy", "invalid", "calls_total")},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invites", type=int, default=300)
    parser.add_argument("--rate", type=float, default=100, help="INVITEs per second")
    args = parser.parse_args()
    var = Path(tempfile.mkdtemp(prefix="sip-amp-"))
    for i, allowed in enumerate((False, True)):
        print(json.dumps(measure(var, allowed, args.invites, args.rate, seed=i == 0), ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
