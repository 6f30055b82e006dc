"""pyVoIP 1.6.8 defects D7, D8 and D9 and the session refresh (hotline/ivr/outbound/pyvoip_fixes.py), against a
real sipp phone. Each test fails with its fix taken out (checked by hand when they were written).

The dialler's phone (DiallerPhone) calls sipp on 127.0.0.1 directly, as an extension of a trunk that does not
ask it to register (registration is proved against Kamailio in test_outbound.py). RTP goes to a UDP socket here
that keeps every packet, so the test sees the bytes a resident's phone would decode.
"""
from __future__ import annotations

import math
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hotline.ivr.outbound.pyvoip_fixes import DialledCall, DiallerPhone
from tests.conftest import until
from tests.ivr import sipp, sipp_uas

with warnings.catch_warnings():  # pyVoIP 1.6.8 encodes with audioop too (deprecated in 3.11, gone in 3.13)
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

ALAW_SILENCE, ULAW_SILENCE = 0xD5, 0xFF


class RtpCapture(sipp.MediaSink):
    """A resident's RTP port that also keeps every packet's payload type and payload, in order of arrival."""

    def __init__(self) -> None:
        self.packets: list[tuple[int, bytes]] = []
        super().__init__()

    def _packet(self, data: bytes) -> None:
        super()._packet(data)
        self.packets.append((data[1] & 0x7F, data[12:]))


class Events:
    """What the dialler would hear of a call: the listener's events, from pyVoIP's threads."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, event: str, value: Any) -> None:
        with self.lock:
            self.seen.append((event, value))

    def of(self, name: str) -> list[Any]:
        with self.lock:
            return [value for event, value in self.seen if event == name]


@pytest.fixture(scope="module")
def carrier() -> int:
    """The port where each test's sipp phone listens (the dialler's 'server')."""
    return sipp.free_udp_port()


@pytest.fixture(scope="module")
def phone(carrier: int) -> Iterator[DiallerPhone]:
    """One dialler phone for the module, sending everything to sipp at `carrier`, not registering."""
    base = 41000 + (sipp.free_udp_port() % 150) * 40
    p = DiallerPhone(server="127.0.0.1", port=carrier, username="dialler", password="", domain="", caller_id="96345",
                     my_ip="127.0.0.1", sip_port=sipp.free_udp_port(), rtp_low=base, rtp_high=base + 38)
    p.sip._register_loop = lambda: None  # type: ignore[method-assign]  # a trunk without registration
    p.start()
    try:
        yield p
    finally:
        p.stop()


def start_phone(carrier: int, xml: str, workdir: Path, media_port: int, calls: int = 1) -> sipp_uas.Phone:
    uas = sipp_uas.answer_calls(carrier, xml, workdir, calls=calls, timeout=30, media_port=media_port)
    time.sleep(0.3)  # sipp binds its port
    return uas


def dial(p: DiallerPhone, number: str) -> tuple[DialledCall, Events]:
    events = Events()
    call = p.dial(number, events)
    threading.Thread(target=call.send_invite, daemon=True).start()
    return call, events


# --- D8: A-law is encoded as A-law ----------------------------------------------------------------------


def test_a_phone_that_takes_only_alaw_hears_alaw(phone: DiallerPhone, carrier: int, tmp_path: Path) -> None:
    """The phone answers with PCMA only (payload 8): the call uses PCMA, silence arrives as A-law silence (0xD5;
    1.6.8 sent mu-law's 0xFF under payload type 8) and a tone as the A-law encoding of that tone."""
    capture = RtpCapture()
    xml = sipp_uas.scenario(codec=8, first_key_after_ms=0)
    uas = start_phone(carrier, xml, tmp_path / "uas", media_port=capture.port)
    try:
        call, events = dial(phone, "13900000008")
        until(lambda: events.of("answered"), 10, "the call is answered")
        assert [c.preference.value for c in call.RTPClients] == [8]  # PCMA negotiated
        until(lambda: len(capture.packets) >= 10, 5, "RTP arrives")
        silence = list(capture.packets[:5])
        # 0.6 s of a 440 Hz tone, as the 8-bit unsigned audio pyVoIP takes
        tone = bytes(128 + round(90 * math.sin(2 * math.pi * 440 * i / 8000)) for i in range(4800))
        call.write_audio(tone)
        time.sleep(1.0)
        call.hangup()
        code, log, _ = uas.finish(20)
    finally:
        uas.kill()
        capture.close()
    assert code == 0, log
    assert all(pt == 8 for pt, _ in capture.packets)
    assert all(payload == bytes([ALAW_SILENCE]) * 160 for _, payload in silence), silence[0][1][:8].hex()
    expected = audioop.lin2alaw(audioop.bias(tone, 1, -128), 1)
    heard = [payload for _, payload in capture.packets if payload != bytes([ALAW_SILENCE]) * 160]
    assert len(heard) >= 25  # the tone's 30 packets (the last may be padded with silence)
    full = [p for p in heard if len(p) == 160 and set(p) != {ALAW_SILENCE}]
    assert sum(p in expected for p in full) >= 25, "the tone does not arrive as its A-law encoding"
    decoded = audioop.alaw2lin(b"".join(full[:25]), 2)
    assert audioop.max(decoded, 2) > 8000  # decodes as a loud tone, not as noise of the wrong law


# --- D7: the resident's BYE and our hangup at the same time ----------------------------------------------------


# After the phone's own BYE (sipp_uas.bye_out_part): on a call to "crossing...", our BYE crossed it.
OURS_CROSSING = """
  <nop next="crossing" test="crossing"/>
  <nop next="done"/>
  <label id="crossing"/>
  <recv request="BYE" timeout="5000"/>
  <send>
    <![CDATA[
      SIP/2.0 481 Call/Transaction Does Not Exist
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
  <label id="done"/>
"""


def _hang_up_on_bye() -> str:
    """The answering phone hangs up 1 s after the ACK; on a call to "crossing..." it then expects our BYE, which
    crossed its own, and answers 481."""
    invite = sipp_uas.invite_part().replace(
        "</action>", '  <ereg regexp="crossing" search_in="hdr" header="To:" assign_to="crossing"/>\n    </action>')
    return ('<?xml version="1.0" encoding="ISO-8859-1" ?>\n<scenario name="hangs up">\n'
            '  <Global variables="mport" />\n' + invite + sipp_uas.answer_part()
            + '  <pause milliseconds="1000"/>' + sipp_uas.bye_out_part() + OURS_CROSSING + "\n</scenario>\n")


def test_hanging_up_as_the_resident_hangs_up(phone: DiallerPhone, carrier: int, tmp_path: Path) -> None:
    """D7: 1.6.8's hangup() raised InvalidStateError once the peer's BYE had ended the call, and nothing stopped the
    call from ending twice. Here: hanging up after the resident's BYE, and while it is being handled, does not
    raise; each call ends once, as answered (200), and leaves no call or RTP port behind."""
    capture = RtpCapture()
    xml = _hang_up_on_bye()
    uas = start_phone(carrier, xml, tmp_path / "uas", capture.port, calls=2)
    try:
        # 1. the resident's BYE first, the flow's hangup after it
        first, first_events = dial(phone, "13900000071")
        until(lambda: first_events.of("ended"), 10, "the resident's BYE ends the call")
        first.hangup()
        first.hangup()

        # 2. our hangup runs while the receive thread handles the resident's BYE
        second, second_events = dial(phone, "crossing13900000072")
        errors: list[BaseException] = []
        remote_bye = second.bye

        def hang_up() -> None:
            try:
                second.hangup()
            except BaseException as exc:
                errors.append(exc)

        def racing_bye() -> None:
            ours = threading.Thread(target=hang_up)
            ours.start()
            time.sleep(0.1)  # our hangup has the call's lock: the BYE is handled while it runs
            remote_bye()
            ours.join(5)

        second.bye = racing_bye  # type: ignore[method-assign]
        until(lambda: second_events.of("ended"), 10, "the call ends")
        time.sleep(0.3)
        code, log, _ = uas.finish(20)
    finally:
        uas.kill()
        capture.close()
    assert code == 0, log
    assert not errors, errors
    for events in (first_events, second_events):
        assert events.of("answered") == [200] and events.of("ended") == [200], events.seen
    assert first.status == second.status == 200
    assert phone.calls == {} and not phone.assignedPorts


# --- D9: a call waiting for its answer does not stop the others -----------------------------------------------


SLOW_OR_QUICK = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="one slow phone, one quick">
  <Global variables="mport" />
  {invite}
  <nop next="slow" test="slow"/>
  {answer}
  <pause milliseconds="500"/>
  {bye}
  <nop next="end"/>
  <label id="slow"/>
  <pause milliseconds="{slow_ms}"/>
  {answer}
  {bye_in}
  <label id="end"/>
</scenario>
"""


def test_a_call_waiting_for_its_answer_does_not_stop_another(phone: DiallerPhone, carrier: int,
                                                             tmp_path: Path) -> None:
    """D9: 1.6.8's invite() kept the receive lock until the INVITE had a response, so while one resident's phone
    stayed silent nothing else was received. Here the first phone says nothing for 3 s; meanwhile a second call
    is answered, hears its ACK and is hung up by its resident, all before the first phone's first response."""
    capture = RtpCapture()
    invite = sipp_uas.invite_part().replace(  # a call to "slow..." takes the slow branch
        "</action>", '  <ereg regexp="slow" search_in="hdr" header="To:" assign_to="slow"/>\n    </action>')
    xml = SLOW_OR_QUICK.format(invite=invite, answer=sipp_uas.answer_part(),
                               bye=sipp_uas.bye_out_part(), bye_in=sipp_uas.bye_in_part(20000), slow_ms=3000)
    uas = start_phone(carrier, xml, tmp_path / "uas", capture.port, calls=2)
    try:
        slow, slow_events = dial(phone, "slow13900000091")
        time.sleep(0.2)
        started = time.monotonic()
        quick, quick_events = dial(phone, "13900000092")
        until(lambda: quick_events.of("ended"), 10, "the quick call is answered and hung up by its resident")
        quick_took = time.monotonic() - started
        assert not slow_events.seen, "the slow phone had not answered yet"
        until(lambda: slow_events.of("answered"), 10, "the slow phone answers in the end")
        slow.hangup()
        code, log, _ = uas.finish(20)
    finally:
        uas.kill()
        capture.close()
    assert code == 0, log
    assert quick_took < 2.5, quick_took
    assert quick_events.of("answered") == [200] and quick_events.of("ended") == [200]
    assert slow_events.of("ended") == [200]


# --- a session refresh (re-INVITE with the same media) ------------------------------------------------------


def test_a_session_refresh_is_answered_and_the_audio_goes_on(phone: DiallerPhone, carrier: int,
                                                            tmp_path: Path) -> None:
    """A phone or PBX refreshing the session (RFC 4028) re-INVITEs with the media it answered with; the dialler
    declined it with 488 (and such a PBX may end the call). Now it answers 200 with our SDP for the formats
    offered (PCMU and events), the audio goes on at 50 packets/s from one sender, and the call ends normally."""
    capture = RtpCapture()
    xml = ('<?xml version="1.0" encoding="ISO-8859-1" ?>\n<scenario name="refreshes">\n'
           '  <Global variables="mport" />\n' + sipp_uas.invite_part() + sipp_uas.answer_part()
           + '  <pause milliseconds="500"/>\n' + sipp_uas.refresh_part() + sipp_uas.bye_in_part(20000)
           + "\n</scenario>\n")
    uas = start_phone(carrier, xml, tmp_path / "uas", capture.port)
    try:
        call, events = dial(phone, "13900000040")
        until(lambda: events.of("answered"), 10, "the call is answered")
        time.sleep(1.0)  # the refresh comes 0.5 s after the ACK
        counted = len(capture.packets)
        time.sleep(2.0)
        rate = (len(capture.packets) - counted) / 2.0
        call.hangup()
        code, log, _ = uas.finish(20)
    finally:
        uas.kill()
        capture.close()
    assert code == 0, log  # sipp checked the 200 and its SDP
    assert 45 <= rate <= 55, rate  # one transmitter (1.6.8 started a second one on re-INVITE)
    assert events.of("ended") == [200] and call.status == 200


# --- an RTP port of the range held by another program ----------------------------------------------------------


def test_an_rtp_port_another_program_holds_is_skipped(phone: DiallerPhone, carrier: int, tmp_path: Path) -> None:
    """The first free port of the range is bound by someone else: the call offers the next one and is answered
    with audio (it was failed after the answer with `unusable answer: [Errno 98] Address already in use`)."""
    import socket
    first = next(p for p in range(phone.rtpPortLow, phone.rtpPortHigh + 1, 2) if p not in phone.assignedPorts)
    squatter = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    squatter.bind(("127.0.0.1", first))
    capture = RtpCapture()
    uas = start_phone(carrier, sipp_uas.scenario(first_key_after_ms=0), tmp_path / "uas", media_port=capture.port)
    try:
        call, events = dial(phone, "13900000098")
        assert call.port != first and call.port not in (p for p in phone.assignedPorts if p != call.port)
        until(lambda: events.of("answered") or events.of("ended"), 10, "the call is answered or ends")
        assert events.of("answered") == [200] and events.of("ended") == []
        assert [c.inPort for c in call.RTPClients] == [call.port]
        until(lambda: len(capture.packets) >= 10, 5, "RTP arrives from the call")
        call.hangup()
        code, log, _ = uas.finish(20)
    finally:
        uas.kill()
        capture.close()
        squatter.close()
    assert code == 0, log
    until(lambda: call.port not in phone.assignedPorts, 5, "the call's port is given back")
    # Every port taken, ours or not: the dial is refused at once, before an INVITE offers a port it cannot use.
    holders = []
    try:
        for port in range(phone.rtpPortLow, phone.rtpPortHigh + 1, 2):
            if port not in phone.assignedPorts:
                holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                holder.bind(("127.0.0.1", port))
                holders.append(holder)
        with pytest.raises(Exception, match="no RTP port left"):
            phone.dial("13900000099", Events())
    finally:
        for holder in holders:
            holder.close()
