"""SDP offer/answer for one audio stream: G.711 (PCMU preferred, PCMA) and RFC 4733 telephone-events."""
from __future__ import annotations

import secrets
from dataclasses import dataclass

CODECS = {0: "PCMU", 8: "PCMA"}  # static payload types we speak, in order of preference


class NoCommonCodec(ValueError):
    """The offer has neither PCMU nor PCMA: the INVITE gets 488."""


@dataclass(frozen=True)
class Offer:
    address: str
    port: int
    payload_type: int  # the G.711 codec chosen
    dtmf_payload_type: int | None  # telephone-event, if offered


def parse_offer(body: bytes) -> Offer:
    text = body.decode("utf-8", errors="replace")
    session_address = media_address = ""
    port = -1
    formats: list[int] = []
    names: dict[int, str] = {}
    in_audio = False
    for line in text.replace("\r\n", "\n").split("\n"):
        kind, _, value = line.strip().partition("=")
        if kind == "c":
            address = value.split()[-1] if value.split() else ""
            if in_audio:
                media_address = address
            else:
                session_address = address
        elif kind == "m":
            parts = value.split()
            in_audio = bool(parts) and parts[0] == "audio" and port < 0
            if in_audio and len(parts) >= 4:
                port = int(parts[1]) if parts[1].isdigit() else -1
                formats = [int(f) for f in parts[3:] if f.isdigit()]
        elif kind == "a" and in_audio and value.startswith("rtpmap:"):
            pt, _, encoding = value[7:].partition(" ")
            if pt.isdigit():
                names[int(pt)] = encoding.split("/")[0].lower()
    if port <= 0 or not (media_address or session_address):
        raise ValueError("no audio stream in the offer")
    chosen = next((pt for pt in CODECS if pt in formats), None)
    if chosen is None:
        raise NoCommonCodec("neither PCMU nor PCMA offered")
    dtmf = next((pt for pt in formats if names.get(pt) == "telephone-event"), None)
    return Offer(media_address or session_address, port, chosen, dtmf)


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
