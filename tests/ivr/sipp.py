"""sipp (Debian sip-tester) as a real caller: scenarios built per test from key presses.

The SDP names a media port where the test listens, so the test hears exactly
what the caller would; digits are sipp's RTP captures of RFC 4733 events.
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

PCAPS = Path("/usr/share/sip-tester")
KEY_PCAP = {**{str(d): f"dtmf_2833_{d}.pcap" for d in range(10)}, "#": "dtmf_2833_pound.pcap",
            "*": "dtmf_2833_star.pcap"}

INVITE = """
  <send retrans="500">
    <![CDATA[
      INVITE sip:{callee}@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:{callee}@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:{caller}@[local_ip]:[local_port]>
      Max-Forwards: 70
      Subject: hotline test
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=caller 53655765 2353687637 IN IP4 [local_ip]
      s=-
      c=IN IP4 [local_ip]
      t=0 0
      m=audio [$mport] RTP/AVP {formats}
{rtpmaps}
    ]]>
  </send>
"""
ACK = """
  <send>
    <![CDATA[
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      [routes]
      From: <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: <sip:{caller}@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
"""
BYE_OUT = """
  <send retrans="500">
    <![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      [routes]
      From: <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200" crlf="true"/>
"""
BYE_IN = """
  <recv request="BYE" timeout="{timeout_ms}"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
"""


ACCEPT_REFER = """
  <recv request="REFER" timeout="30000">
    <action><ereg regexp=".*" search_in="hdr" header="From:" assign_to="ivrfrom"/></action>
  </recv>
  <send>
    <![CDATA[
      SIP/2.0 202 Accepted
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
  <send retrans="500">
    <![CDATA[
      NOTIFY [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      [routes]
      From: <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To:[$ivrfrom]
      Call-ID: [call_id]
      CSeq: 2 NOTIFY
      Event: refer
      Subscription-State: terminated;reason=noresource
      Max-Forwards: 70
      Content-Type: message/sipfrag;version=2.0
      Content-Length: [len]

      SIP/2.0 {refer_status}
    ]]>
  </send>
  <recv response="200"/>
"""


def scenario(keys: str, *, caller: str = "13800138000", callee: str = "12345", codecs: str = "0",
             first_key_after_ms: int = 2500, key_gap_ms: int = 700, hang_up_after_ms: int | None = None,
             wait_for_bye_ms: int = 60000, audio_pcap: str | None = None, audio_before_key: int | None = None,
             refer_status: str | None = None) -> str:
    """A call that presses `keys` ('.' waits one gap), then hangs up itself or waits for the IVR's BYE.

    With `refer_status` ("200 OK", "486 Busy Here") the caller's phone accepts the IVR's REFER and reports
    how the new call went, as a phone doing a blind transfer would."""
    formats = f"{codecs} 101".split()
    names = {"0": "PCMU/8000", "8": "PCMA/8000", "18": "G729/8000", "101": "telephone-event/8000"}
    rtpmaps = "\n".join(f"      a=rtpmap:{f} {names[f]}" for f in formats)
    rtpmaps += "\n      a=fmtp:101 0-15"
    body = [INVITE.format(caller=caller, callee=callee, formats=" ".join(formats), rtpmaps=rtpmaps),
            '  <recv response="100" optional="true"/>', '  <recv response="180" optional="true"/>',
            '  <recv response="200" rtd="true" rrs="true"/>', ACK.format(caller=caller, callee=callee),
            f'  <pause milliseconds="{first_key_after_ms}"/>']
    for i, key in enumerate(keys):
        if i:
            body.append(f'  <pause milliseconds="{key_gap_ms}"/>')  # none after the last: the IVR may hang up
        if audio_pcap and audio_before_key == i:
            body.append(f'  <nop><action><exec play_pcap_audio="{audio_pcap}"/></action></nop>')
            body.append('  <pause milliseconds="5000"/>')
        if key != ".":
            body.append(f'  <nop><action><exec play_pcap_audio="{PCAPS / KEY_PCAP[key]}"/></action></nop>')
    if refer_status is not None:
        body.append(ACCEPT_REFER.format(caller=caller, refer_status=refer_status))
    if hang_up_after_ms is not None:
        body.append(f'  <pause milliseconds="{hang_up_after_ms}"/>')
        body.append(BYE_OUT.format(caller=caller, callee=callee))
    else:
        body.append(BYE_IN.format(timeout_ms=wait_for_bye_ms))
    return ('<?xml version="1.0" encoding="ISO-8859-1" ?>\n<scenario name="hotline caller">\n'
            '  <Global variables="mport" />\n' + "\n".join(body) + "\n</scenario>\n")


@dataclass
class Heard:
    """RTP the caller received: arrival times per packet."""
    arrivals: list[float] = field(default_factory=list)
    payload_types: set[int] = field(default_factory=set)

    def packets_per_second(self) -> float:
        if len(self.arrivals) < 2:
            return 0.0
        return (len(self.arrivals) - 1) / (self.arrivals[-1] - self.arrivals[0])

    def worst_gap_ms(self) -> float:
        return max((b - a for a, b in zip(self.arrivals, self.arrivals[1:], strict=False)), default=0.0) * 1000


class MediaSink:
    """A UDP port standing in for the caller's phone: records when each RTP packet arrives."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.heard = Heard()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(2048)
            except TimeoutError:
                continue
            except OSError:
                return
            if len(data) >= 12:
                self._packet(data)

    def _packet(self, data: bytes) -> None:
        self.heard.arrivals.append(time.monotonic())
        self.heard.payload_types.add(data[1] & 0x7F)

    def close(self) -> Heard:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
        return self.heard


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sipp_path() -> str:
    path = shutil.which("sipp")
    if not path:
        raise RuntimeError("sipp is missing: scripts/setup.sh installs Debian's sip-tester")
    return path


def call(target: str, xml: str, workdir: Path, timeout: float = 120) -> tuple[subprocess.CompletedProcess[str], Heard]:
    """Run one call with sipp against host:port; returns sipp's result and what the caller heard."""
    workdir.mkdir(parents=True, exist_ok=True)
    scenario_file = workdir / "scenario.xml"
    scenario_file.write_text(xml)
    sink = MediaSink()
    try:
        result = subprocess.run(
            [sipp_path(), target, "-sf", str(scenario_file), "-m", "1", "-l", "1", "-i", "127.0.0.1",
             "-p", str(free_udp_port()), "-mi", "127.0.0.1", "-mp", str(free_udp_port()),
             "-set", "mport", str(sink.port), "-timeout", f"{int(timeout)}s", "-trace_err", "-nostdin"],
            cwd=workdir, capture_output=True, text=True, timeout=timeout + 30)
    finally:
        heard = sink.close()
    return result, heard
