"""SDP offer/answer for one audio stream: G.711 (PCMU preferred, PCMA) and RFC 4733 telephone-events.

Every value of the offer is checked here: the media port (1–65535), the
address (an IP literal we could send to, or a host name that the server
resolves off the loop or refuses), payload types (0–127). A malformed
offer raises InvalidOffer (the INVITE gets 400); one we cannot use raises
NotAcceptable (488).
"""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from hotline.ivr.sip.addresses import InvalidAddress, check_host, ip_literal, port_number

CODECS = {0: "PCMU", 8: "PCMA"}  # static payload types we speak, in order of preference
_FORMAT = re.compile(r"^[0-9]{1,3}$")


class NotAcceptable(ValueError):
    """An offer we cannot take (no audio, no address we may send to): the INVITE gets 488."""


class NoCommonCodec(NotAcceptable):
    """The offer has neither PCMU nor PCMA: the INVITE gets 488."""


class InvalidOffer(ValueError):
    """A malformed value in the offer (a port above 65535, a payload type above 127): the INVITE gets 400."""


def _payload_type(text: str) -> int:
    if not _FORMAT.match(text) or int(text) > 127:
        raise InvalidOffer(f"bad payload type {text[:10]!r}")
    return int(text)


@dataclass(frozen=True)
class Offer:
    address: str
    port: int
    payload_type: int  # the G.711 codec chosen
    dtmf_payload_type: int | None  # telephone-event, if offered


def parse_offer(body: bytes) -> Offer:
    """The audio stream of an offer; the address may be a host name (see the module's note)."""
    text = body.decode("utf-8", errors="replace")
    session_address = media_address = ""
    port = -1
    formats: list[int] = []
    names: dict[int, str] = {}
    in_audio = in_media = False
    for line in text.replace("\r\n", "\n").split("\n"):
        kind, _, value = line.strip().partition("=")
        if kind == "c" and (in_audio or not in_media):
            address = _connection_address(value)
            if in_audio:
                media_address = address
            else:
                session_address = address
        elif kind == "m":
            in_media = True
            parts = value.split()
            in_audio = bool(parts) and parts[0] == "audio" and port < 0
            if in_audio and len(parts) >= 4:
                port_text = parts[1].split("/")[0]  # "port/count"
                if port_text == "0":
                    raise NotAcceptable("the audio stream is refused (port 0)")
                try:
                    port = port_number(port_text)
                except InvalidAddress as exc:
                    raise InvalidOffer(f"m=audio: {exc}") from None
                if parts[2].upper() not in ("RTP/AVP", "RTP/AVPF"):
                    raise NotAcceptable(f"transport {parts[2][:20]} (only RTP/AVP)")
                formats = [_payload_type(f) for f in parts[3:]]
        elif kind == "a" and in_audio and value.startswith("rtpmap:"):
            pt, _, encoding = value[7:].partition(" ")
            names[_payload_type(pt.strip())] = encoding.split("/")[0].strip().lower()
    if port <= 0 or not (media_address or session_address):
        raise NotAcceptable("no audio stream in the offer")
    chosen = next((pt for pt in CODECS if pt in formats), None)
    if chosen is None:
        raise NoCommonCodec("neither PCMU nor PCMA offered")
    dtmf = next((pt for pt in formats if names.get(pt) == "telephone-event"), None)
    return Offer(media_address or session_address, port, chosen, dtmf)


def _connection_address(value: str) -> str:
    """c=IN IP4 <address>: a unicast IP literal or a host name; not multicast, not 0.0.0.0 (hold)."""
    parts = value.split()
    if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
        raise InvalidOffer(f"bad c= line {value[:60]!r}")
    if "/" in parts[2]:
        raise NotAcceptable("a multicast address")
    try:
        host = check_host(parts[2])
    except InvalidAddress as exc:
        raise InvalidOffer(f"c=: {exc}") from None
    address = ip_literal(host)
    if address is not None:
        if address.is_multicast or address.is_unspecified or str(address) == "255.255.255.255":
            raise NotAcceptable(f"media address {address} (multicast, broadcast or on hold)")
        if (address.version == 4) != (parts[1] == "IP4"):
            raise InvalidOffer("c=: the address does not match its type")
    return host


def answer(offer: Offer, local_address: str, local_port: int) -> bytes:
    session = secrets.randbelow(2**31)
    formats = [str(offer.payload_type)] + ([str(offer.dtmf_payload_type)] if offer.dtmf_payload_type else [])
    lines = ["v=0", f"o=hotline {session} {session} IN IP4 {local_address}", "s=hotline",
             f"c=IN IP4 {local_address}", "t=0 0", f"m=audio {local_port} RTP/AVP {' '.join(formats)}",
             f"a=rtpmap:{offer.payload_type} {CODECS[offer.payload_type]}/8000"]
    if offer.dtmf_payload_type:
        lines += [f"a=rtpmap:{offer.dtmf_payload_type} telephone-event/8000",
                  f"a=fmtp:{offer.dtmf_payload_type} 0-15"]
    lines += ["a=ptime:20", "a=sendrecv"]
    return ("\r\n".join(lines) + "\r\n").encode()
