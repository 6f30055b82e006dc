"""Real calls: sipp dials the service's SIP port, hears the prompts (RTP at 50 packets/s), presses
keys as RFC 4733 events, and the store records what happened. Malformed traffic from a raw socket
must not hurt the service, and is recorded where it was a call."""
from __future__ import annotations

import socket
import struct
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hotline.config import ROOT
from tests.ivr import sipp
from tests.service_process import ServiceProcess

TOKEN = "ivr-test-token"


@pytest.fixture(scope="module")
def ivr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """One service with demo accounts; agents 'on duty' around the clock so 0 transfers."""
    var = tmp_path_factory.mktemp("ivr")
    flows = var / "flows"
    flows.mkdir()
    main = (ROOT / "ivr_flows" / "main.yml").read_text(encoding="utf-8")
    (flows / "main.yml").write_text(main.replace('open: "08:00"', 'open: "00:00"')
                                    .replace('close: "20:00"', 'close: "23:59:59"'), encoding="utf-8")
    port = sipp.free_udp_port()
    svc = ServiceProcess(var, TOKEN, bot=False, seed_accounts=20, env={
        "HOTLINE_SIP_ENABLED": "true", "HOTLINE_SIP_PORT": str(port), "HOTLINE_SIP_FLOWS_DIR": str(flows),
        "HOTLINE_SIP_AGENT_URI": "sip:queue@127.0.0.1:5999", "HOTLINE_SIP_RING_SECONDS": "0.3"})
    svc.sip_port = port  # type: ignore[attr-defined]
    svc.start()
    try:
        yield svc
    finally:
        svc.stop()


def _target(ivr: ServiceProcess) -> str:
    return f"127.0.0.1:{ivr.sip_port}"  # type: ignore[attr-defined]


def _last_call(ivr: ServiceProcess, caller: str) -> dict:
    calls = ivr.api(f"/api/calls?caller={caller}")["items"]
    assert calls, "the call was not recorded"
    return calls[0]


def _run(ivr: ServiceProcess, tmp_path: Path, keys: str, **kwargs) -> tuple[dict, sipp.Heard]:
    caller = kwargs.setdefault("caller", "13800138000")
    result, heard = sipp.call(_target(ivr), sipp.scenario(keys, **kwargs), tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    deadline = time.monotonic() + 10
    while True:  # the record is completed a moment after the last SIP message
        call = _last_call(ivr, caller)
        if call["ended_at"] or time.monotonic() > deadline:
            return call, heard
        time.sleep(0.2)


def _heard_the_prompts(heard: sipp.Heard, seconds: float) -> None:
    assert heard.payload_types == {0}  # PCMU, as offered
    assert 49 <= heard.packets_per_second() <= 51
    assert len(heard.arrivals) >= seconds * 45


def test_a_balance_lookup(ivr: ServiceProcess, tmp_path: Path) -> None:
    call, heard = _run(ivr, tmp_path, "13100000001#")
    assert (call["menu_path"], call["digits"], call["account_number"], call["outcome"]) == (
        ["主菜单", "余额查询"], "13100000001#", "3100000001", "self_served")
    assert call["caller"] == "13800138000" and call["answered_at"]
    _heard_the_prompts(heard, 15)


def test_a_repair_report_creates_a_ticket(ivr: ServiceProcess, tmp_path: Path) -> None:
    call, _ = _run(ivr, tmp_path, "213100000002#", caller="13600136000")
    assert call["outcome"] == "ticket" and call["ticket_number"]
    ticket = ivr.api(f"/api/tickets/{call['ticket_number']}")
    assert (ticket["business_type"], ticket["account_number"], ticket["channel"]) == ("leak", "3100000002", "phone")
    assert ticket["contact_phone"] == "13600136000"


def test_a_complaint_voicemail_is_a_ticket_with_the_recording(ivr: ServiceProcess, tmp_path: Path) -> None:
    # "3" during the welcome; the caller speaks (sipp's PCMA capture) after the intro and the beep, then "#".
    call, _ = _run(ivr, tmp_path, "3#", caller="13500135000", codecs="8",
                   audio_pcap=str(sipp.PCAPS / "g711a.pcap"), audio_before_key=1, key_gap_ms=16000)
    assert call["outcome"] == "voicemail" and call["recording_url"] and call["ticket_number"]
    ticket = ivr.api(f"/api/tickets/{call['ticket_number']}")
    assert ticket["category"] == "complaint" and [a["kind"] for a in ticket["attachments"]] == ["voice"]
    recording = next((ivr.var / "recordings").rglob("*.wav"))
    assert recording.stat().st_size > 8000  # the caller's seconds of speech, decoded to 16-bit


def test_zero_transfers_to_the_agent_queue(ivr: ServiceProcess, tmp_path: Path) -> None:
    call, _ = _run(ivr, tmp_path, "0", caller="13400134000", refer_status="200 OK")
    assert call["outcome"] == "transferred" and call["menu_path"] == ["主菜单", "人工服务"]


def test_a_transfer_nobody_answers_becomes_a_voicemail(ivr: ServiceProcess, tmp_path: Path) -> None:
    call, _ = _run(ivr, tmp_path, "0", caller="13300133000", refer_status="486 Busy Here")
    assert call["menu_path"] == ["主菜单", "人工服务", "留言"]
    assert call["outcome"] in ("voicemail", "abandoned")  # a silent caller leaves no message


def test_a_caller_who_hangs_up_is_recorded_as_abandoned(ivr: ServiceProcess, tmp_path: Path) -> None:
    """Keys typed during the welcome count; the caller gives up halfway through the account number."""
    # The welcome (with its recording notice) lasts about 7 s: the caller hangs up after it, mid-account.
    call, _ = _run(ivr, tmp_path, "131", caller="13200132000", hang_up_after_ms=6000)
    assert (call["outcome"], call["digits"], call["menu_path"]) == ("abandoned", "131", ["主菜单", "余额查询"])


def test_invalid_keys_are_retried_then_the_ivr_says_goodbye(ivr: ServiceProcess, tmp_path: Path) -> None:
    call, _ = _run(ivr, tmp_path, "9..8..7", caller="13100131000", key_gap_ms=4000)
    assert (call["digits"], call["outcome"]) == ("987", "abandoned")


# --- what a hostile or broken peer sends ------------------------------------------------------------

class RawPeer:
    def __init__(self, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(5)
        self.port, self.target = self.sock.getsockname()[1], ("127.0.0.1", port)

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, self.target)

    def recv_status(self) -> tuple[int, str]:
        data = self.sock.recv(65535).decode()
        first = data.split("\r\n", 1)[0]
        return int(first.split()[1]), data

    def request(self, method: str, call_id: str, body: str = "", cseq: int = 1, extra: str = "") -> bytes:
        head = (f"{method} sip:12345@127.0.0.1 SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK{uuid.uuid4().hex[:10]};rport\r\n"
                f"From: <sip:13000130000@127.0.0.1>;tag=raw1\r\nTo: <sip:12345@127.0.0.1>\r\n"
                f"Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContact: <sip:13000130000@127.0.0.1:{self.port}>\r\n"
                f"Max-Forwards: 70\r\n{extra}")
        if body:
            head += "Content-Type: application/sdp\r\n"
        return (head + f"Content-Length: {len(body.encode())}\r\n\r\n" + body).encode()

    def close(self) -> None:
        self.sock.close()


def _sdp(port: int, formats: str = "0 101") -> str:
    return (f"v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP {formats}\r\na=rtpmap:101 telephone-event/8000\r\n")


def test_garbage_and_broken_requests_do_not_hurt_the_service(ivr: ServiceProcess, tmp_path: Path) -> None:
    peer = RawPeer(ivr.sip_port)  # type: ignore[attr-defined]
    try:
        for junk in (b"\x00\x01\x02garbage", b"INVITE\r\n\r\n", b"SIP/2.0 200 OK\r\n\r\n", "ä".encode("latin-1") * 300,
                     b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4\r\n\r\n"):
            peer.send(junk)
        no_sdp = f"nosdp-{uuid.uuid4().hex}"
        peer.send(peer.request("INVITE", no_sdp))
        status, _ = peer.recv_status()
        assert status == 488
        g729 = f"g729-{uuid.uuid4().hex}"
        peer.send(peer.request("INVITE", g729, _sdp(40000, "18 101")))
        assert peer.recv_status()[0] == 488
        peer.send(peer.request("OPTIONS", f"ping-{uuid.uuid4().hex}"))
        assert peer.recv_status()[0] == 200
    finally:
        peer.close()
    health = ivr.api("/healthz")["components"]["sip"]
    assert health["up"] and health["dropped_datagrams"] >= 4
    outcomes = {c["sip_call_id"]: c["outcome"] for c in ivr.api("/api/calls?caller=13000130000")["items"]}
    assert outcomes[no_sdp] == "failed" and outcomes[g729] == "failed"
    result, _ = sipp.call(_target(ivr), sipp.scenario("", caller="13000130001", hang_up_after_ms=500), tmp_path)
    assert result.returncode == 0  # still answering


def test_cancel_while_ringing_and_a_dtmf_event_above_15(ivr: ServiceProcess) -> None:
    peer = RawPeer(ivr.sip_port)  # type: ignore[attr-defined]
    media = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    media.bind(("127.0.0.1", 0))
    try:
        ringing = f"cancel-{uuid.uuid4().hex}"
        invite = peer.request("INVITE", ringing, _sdp(media.getsockname()[1]))
        peer.send(invite)
        statuses = {peer.recv_status()[0], peer.recv_status()[0]}  # 100 and 180
        assert statuses == {100, 180}
        cancel = invite.decode().replace("INVITE sip", "CANCEL sip", 1).replace("1 INVITE", "1 CANCEL")
        cancel = cancel.split("Content-Type")[0] + "Content-Length: 0\r\n\r\n"
        peer.send(cancel.encode())
        got = {peer.recv_status()[0], peer.recv_status()[0]}
        assert got == {200, 487}

        flash = f"flash-{uuid.uuid4().hex}"
        peer.send(peer.request("INVITE", flash, _sdp(media.getsockname()[1])))
        answer = ""
        while not answer.startswith("SIP/2.0 200"):
            answer = peer.recv_status()[1]
        to = next(line for line in answer.split("\r\n") if line.startswith("To:"))
        rtp_port = int(next(line for line in answer.split("\r\n") if line.startswith("m=audio")).split()[1])
        ack = peer.request("ACK", flash).decode().replace("To: <sip:12345@127.0.0.1>", to)
        peer.send(ack.encode())
        for event in (16, 200):  # flash and nonsense: ignored, the call goes on
            media.sendto(struct.pack("!BBHII", 0x80, 101 | 0x80, 1, 1000 + event, 1) + bytes([event, 10, 0, 160]),
                         ("127.0.0.1", rtp_port))
        media.settimeout(3)
        assert len(media.recv(2048)) == 172  # still hearing 20 ms of PCMU
        bye = peer.request("BYE", flash, cseq=2).decode().replace("To: <sip:12345@127.0.0.1>", to)
        peer.send(bye.encode())
        while peer.recv_status()[0] != 200:
            pass
    finally:
        peer.close()
        media.close()
    outcomes = {c["sip_call_id"]: c for c in ivr.api("/api/calls?caller=13000130000")["items"]}
    assert outcomes[ringing]["outcome"] == "abandoned"
    deadline = time.monotonic() + 10
    while not outcomes.get(flash, {}).get("ended_at") and time.monotonic() < deadline:  # its row may come later
        time.sleep(0.2)
        outcomes = {c["sip_call_id"]: c for c in ivr.api("/api/calls?caller=13000130000")["items"]}
    assert outcomes[flash]["outcome"] == "abandoned" and outcomes[flash]["digits"] == ""


def test_a_via_port_99999_and_an_sdp_port_70000_do_not_silence_the_ivr(ivr: ServiceProcess, tmp_path: Path) -> None:
    """The two INVITEs that used to close the SIP socket and stop the media clock for every later call."""
    peer = RawPeer(ivr.sip_port)  # type: ignore[attr-defined]
    media = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    media.bind(("127.0.0.1", 0))
    try:
        bad_via = peer.request("INVITE", f"via99999-{uuid.uuid4().hex}", _sdp(media.getsockname()[1])).decode()
        bad_via = bad_via.replace(f"127.0.0.1:{peer.port};branch", "127.0.0.1:99999;branch", 1).replace(";rport", "", 1)
        peer.send(bad_via.encode())
        assert peer.recv_status()[0] == 400  # to where it came from, not to port 99999
        peer.send(peer.request("INVITE", f"m70000-{uuid.uuid4().hex}", _sdp(70000)))
        assert peer.recv_status()[0] == 400
    finally:
        peer.close()
        media.close()
    health = ivr.api("/healthz")["components"]["sip"]
    assert health["up"] and health["socket_bound"] and health["media_clock_ticking"] and health["invalid"] >= 2
    call, heard = _run(ivr, tmp_path, "", caller="13000139998", hang_up_after_ms=2000)
    assert call["answered_at"] and call["outcome"] == "abandoned"
    _heard_the_prompts(heard, 4)
