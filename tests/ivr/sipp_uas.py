"""sipp (Debian sip-tester) as the resident's phone for the outbound dialler: UAS scenarios.

The phone answers (or is busy, unknown, or rings until cancelled), advertises a
MediaSink port in its SDP so the test hears what the dialler plays, presses keys as
RFC 4733 events, and hangs up or waits for the dialler's BYE. Its 200 carries a
fixed To-tag that the ACK must echo (pyVoIP 1.6.8 sent a fresh one).
"""
from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests import peers
from tests.ivr import sipp
from tests.peers import stop

TO_TAG = "resident77"

_INVITE = """
  <recv request="INVITE" crlf="true" rrs="true">
    <action>
      <ereg regexp="([0-9]+) INVITE" search_in="hdr" header="CSeq:" assign_to="invall,invcseq"/>
      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="invfrom"/>
      <ereg regexp=".*" search_in="hdr" header="To:" assign_to="invto"/>
    </action>
  </recv>
  <Reference variables="invall,invfrom,invto" />
"""
_RESPONSE = """
  <send{retrans}>
    <![CDATA[
      SIP/2.0 {status}
      [last_Via:]
      [last_Record-Route:]
      [last_From:]
      [last_To:];tag={tag}[call_number]
      [last_Call-ID:]
      CSeq: [$invcseq] INVITE
      Contact: <sip:resident@[local_ip]:[local_port]>
      {body}
    ]]>
  </send>
"""
_SDP = """Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=resident 1 1 IN IP4 [local_ip]
      s=-
      c=IN IP4 [local_ip]
      t=0 0
      m=audio [$mport] RTP/AVP {codec} 101
      a=rtpmap:{codec} {name}/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-15"""
_ACK_CHECKED = f"""
  <recv request="ACK" timeout="10000">
    <action><ereg regexp="tag={TO_TAG}" search_in="hdr" header="To:" check_it="true" assign_to="acktag"/></action>
  </recv>
  <Reference variables="acktag" />
"""
_CANCELLED = """
  <recv request="CANCEL" timeout="{timeout_ms}"/>
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
_BYE_IN = """
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
_BYE_OUT = """
  <send retrans="500">
    <![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: [$invto];tag={tag}[call_number]
      To: [$invfrom]
      [last_Call-ID:]
      CSeq: 7 BYE
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200"/>
"""


def scenario(answer: str = "200", *, keys: str = "", first_key_after_ms: int = 2000, key_gap_ms: int = 800,
             hang_up_after_ms: int | None = None, ring_ms: int = 300, codec: int = 0,
             wait_for_bye_ms: int = 120000) -> str:
    """`answer`: "200" (answers), "486", "404", "603" (final response), or "ring" (rings until CANCELled).

    Keys: '.' waits one gap. Then the phone hangs up after `hang_up_after_ms`, or waits for the dialler's BYE."""
    body = [_INVITE, _RESPONSE.format(status="180 Ringing", retrans="", tag=TO_TAG, body="Content-Length: 0")]
    if answer != "200":
        body.append('  <Reference variables="mport" />')  # no SDP: the media sink is not used
    if answer == "ring":
        body.append(_CANCELLED.format(timeout_ms=120000))
        body.append(_RESPONSE.format(status="487 Request Terminated", retrans="", tag=TO_TAG,
                                     body="Content-Length: 0"))
        body.append('  <recv request="ACK" timeout="10000"/>')
    elif answer != "200":
        reason = {"486": "486 Busy Here", "404": "404 Not Found", "603": "603 Decline", "480":
                  "480 Temporarily Unavailable"}[answer]
        body.append(f'  <pause milliseconds="{ring_ms}"/>')
        body.append(_RESPONSE.format(status=reason, retrans="", tag=TO_TAG, body="Content-Length: 0"))
        body.append('  <recv request="ACK" timeout="10000"/>')
    else:
        name = {0: "PCMU", 8: "PCMA"}[codec]
        body.append(f'  <pause milliseconds="{ring_ms}"/>')
        body.append(_RESPONSE.format(status="200 OK", retrans=' retrans="500"', tag=TO_TAG,
                                     body=_SDP.format(codec=codec, name=name)))
        body.append(_ACK_CHECKED)
        body.append(f'  <pause milliseconds="{first_key_after_ms}"/>')
        for i, key in enumerate(keys):
            if i:
                body.append(f'  <pause milliseconds="{key_gap_ms}"/>')
            if key != ".":
                body.append(f'  <nop><action><exec play_pcap_audio="{sipp.PCAPS / sipp.KEY_PCAP[key]}"/>'
                            '</action></nop>')
        if hang_up_after_ms is not None:
            body.append(f'  <pause milliseconds="{hang_up_after_ms}"/>')
            body.append(_BYE_OUT.format(tag=TO_TAG))
        else:
            body.append(_BYE_IN.format(timeout_ms=wait_for_bye_ms))
    return ('<?xml version="1.0" encoding="ISO-8859-1" ?>\n<scenario name="resident phone">\n'
            '  <Global variables="mport" />\n' + "\n".join(body) + "\n</scenario>\n")


def answer_part(codec: int = 0) -> str:
    """180, then 200 with SDP (media to [$mport]), then the ACK that must echo our To-tag (after _INVITE)."""
    name = {0: "PCMU", 8: "PCMA"}[codec]
    return (_RESPONSE.format(status="180 Ringing", retrans="", tag=TO_TAG, body="Content-Length: 0")
            + _RESPONSE.format(status="200 OK", retrans=' retrans="500"', tag=TO_TAG,
                               body=_SDP.format(codec=codec, name=name)) + _ACK_CHECKED)


def invite_part() -> str:
    """Receive the INVITE, keeping its CSeq, From and To for the responses and a BYE of the phone's own."""
    return _INVITE


def bye_out_part() -> str:
    """The phone hangs up: its BYE, and the 200 it waits for."""
    return _BYE_OUT.format(tag=TO_TAG)


_REFRESH = """
  <send retrans="500">
    <![CDATA[
      INVITE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: [$invto];tag={tag}[call_number]
      To: [$invfrom]
      [last_Call-ID:]
      CSeq: 8 INVITE
      Contact: <sip:resident@[local_ip]:[local_port]>
      Max-Forwards: 70
      {body}
    ]]>
  </send>
  <recv response="200">
    <action>
      <ereg regexp="{answer}" search_in="body" check_it="true" assign_to="refreshed"/>
    </action>
  </recv>
  <Reference variables="refreshed" />
  <send>
    <![CDATA[
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: [$invto];tag={tag}[call_number]
      To: [$invfrom]
      [last_Call-ID:]
      CSeq: 8 ACK
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
"""


def refresh_part(codec: int = 0, answer: str = "m=audio [0-9]+ RTP/AVP 0 101") -> str:
    """A session refresh: the phone re-INVITEs with the SDP of its answer, expects a 200 whose body matches
    `answer` (a regexp) and acknowledges it."""
    name = {0: "PCMU", 8: "PCMA"}[codec]
    return _REFRESH.format(tag=TO_TAG, body=_SDP.format(codec=codec, name=name), answer=answer)


def bye_in_part(timeout_ms: int = 120000) -> str:
    """The phone waits for the dialler's BYE and answers 200."""
    return _BYE_IN.format(timeout_ms=timeout_ms)


@dataclass
class Phone:
    """A running sipp UAS and the media sink its SDP points at."""

    proc: subprocess.Popen[str]
    sink: sipp.MediaSink
    workdir: Path

    def finish(self, timeout: float = 120) -> tuple[int, str, sipp.Heard]:
        """Wait for sipp to finish its calls: (exit code, its output and error log, what it heard)."""
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop(self.proc)
            out, err = self.proc.communicate()
        errors = "".join(p.read_text(errors="replace") for p in self.workdir.glob("*_errors.log"))
        return self.proc.returncode, (out or "")[-3000:] + (err or "")[-2000:] + errors[-3000:], self.sink.close()

    def kill(self) -> None:
        stop(self.proc)
        self.sink.close()


def answer_calls(port: int, xml: str, workdir: Path, calls: int = 1, timeout: float = 150,
                 media_port: int | None = None) -> Phone:
    """Start sipp as a UAS on 127.0.0.1:port for `calls` calls (in the background).

    The SDP's media port is the Phone's MediaSink, or `media_port` (a test's own capture socket)."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "uas.xml").write_text(xml)
    sink = sipp.MediaSink()
    proc = peers.popen(
        "sipp", [sipp.sipp_path(), "-sf", str(workdir / "uas.xml"), "-m", str(calls), "-i", "127.0.0.1",
                 "-p", str(port), "-mi", "127.0.0.1", "-mp", str(sipp.free_udp_port()),
                 "-set", "mport", str(media_port or sink.port), "-timeout", f"{int(timeout)}s", "-trace_err",
                 "-nostdin"],
        cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return Phone(proc, sink, workdir)
