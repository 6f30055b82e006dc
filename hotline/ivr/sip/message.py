"""SIP messages (RFC 3261): parse what peers send, build what we answer.

Tolerant where real peers are sloppy (compact header names, empty headers,
folded lines, bare LF) and strict where it matters (a request needs Via,
From, To, Call-ID and CSeq); anything else raises SipParseError and the
datagram is dropped.
"""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field

COMPACT = {"v": "Via", "f": "From", "t": "To", "i": "Call-ID", "m": "Contact", "l": "Content-Length",
           "c": "Content-Type", "k": "Supported", "s": "Subject", "e": "Content-Encoding", "o": "Event",
           "r": "Refer-To", "b": "Referred-By", "u": "Allow-Events", "x": "Session-Expires"}
CANONICAL = {n.lower(): n for n in (
    "Via", "From", "To", "Call-ID", "CSeq", "Contact", "Content-Length", "Content-Type", "Max-Forwards",
    "Record-Route", "Route", "Allow", "Supported", "User-Agent", "Server", "Event", "Refer-To", "Referred-By",
    "Subscription-State", "Expires", "WWW-Authenticate", "Authorization", "Proxy-Authenticate",
    "Proxy-Authorization", "Warning", "Accept", "Allow-Events", "Reason")}
REQUIRED = ("Via", "From", "To", "Call-ID", "CSeq")
REASONS = {100: "Trying", 180: "Ringing", 200: "OK", 202: "Accepted", 400: "Bad Request", 405: "Method Not Allowed",
           481: "Call/Transaction Does Not Exist", 486: "Busy Here", 487: "Request Terminated",
           488: "Not Acceptable Here", 500: "Server Internal Error", 501: "Not Implemented", 503: "Service Unavailable"}
_FIRST_REQUEST = re.compile(r"^([A-Z]+) (\S+) SIP/2\.0$")
_FIRST_RESPONSE = re.compile(r"^SIP/2\.0 (\d{3}) ?(.*)$")


class SipParseError(ValueError):
    pass


@dataclass
class SipMessage:
    method: str | None = None  # a request's method; None for a response
    uri: str = ""
    status: int = 0
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @property
    def is_request(self) -> bool:
        return self.method is not None

    def get(self, name: str, default: str = "") -> str:
        for key, value in self.headers:
            if key == name:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name]

    @property
    def call_id(self) -> str:
        return self.get("Call-ID")

    @property
    def cseq(self) -> tuple[int, str]:
        number, _, method = self.get("CSeq").partition(" ")
        return int(number), method.strip()

    def to_bytes(self) -> bytes:
        first = f"{self.method} {self.uri} SIP/2.0" if self.is_request else f"SIP/2.0 {self.status} {self.reason}"
        lines = [first] + [f"{k}: {v}" for k, v in self.headers if k != "Content-Length"]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


def _split_via(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def parse(data: bytes) -> SipMessage:
    if len(data) > 65_000:
        raise SipParseError("datagram too large")
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = data.partition(b"\n\n")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SipParseError("not UTF-8") from exc
    raw_lines = text.replace("\r\n", "\n").split("\n")
    first = raw_lines[0].strip()
    message = SipMessage()
    if match := _FIRST_REQUEST.match(first):
        message.method, message.uri = match.group(1), match.group(2)
    elif match := _FIRST_RESPONSE.match(first):
        message.status, message.reason = int(match.group(1)), match.group(2)
    else:
        raise SipParseError(f"not a SIP start line: {first[:60]!r}")
    lines: list[str] = []
    for line in raw_lines[1:]:
        if line[:1] in (" ", "\t") and lines:
            lines[-1] += " " + line.strip()  # a folded header continues the one before
        elif line.strip():
            lines.append(line)
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon:
            raise SipParseError(f"header line without a colon: {line[:60]!r}")
        name, value = name.strip(), value.strip()
        canonical = COMPACT.get(name) if len(name) == 1 else None
        canonical = canonical or CANONICAL.get(name.lower(), name)
        if canonical == "Via":
            message.headers += [("Via", v) for v in _split_via(value)]
        else:
            message.headers.append((canonical, value))
    for name in REQUIRED:
        if not message.get(name):
            raise SipParseError(f"missing {name}")
    try:
        message.cseq  # noqa: B018  (validates)
    except ValueError as exc:
        raise SipParseError("bad CSeq") from exc
    length = message.get("Content-Length")
    if length:
        if not length.isdigit():
            raise SipParseError("bad Content-Length")
        body = body[:int(length)]
    message.body = body
    return message


def tag_of(header: str) -> str:
    match = re.search(r";\s*tag=([^;\s>]+)", header)
    return match.group(1) if match else ""


def uri_of(header: str) -> str:
    """The URI inside a name-addr (<sip:…>) or addr-spec."""
    match = re.search(r"<([^>]+)>", header)
    return (match.group(1) if match else header.split(";")[0]).strip()


def user_of(header: str) -> str:
    """The caller's number: the user part of the From URI."""
    uri = uri_of(header)
    match = re.match(r"^(?:sips?|tel):([^@;]+)", uri)
    return match.group(1) if match else ""


def host_port_of(uri: str, default_port: int = 5060) -> tuple[str, int]:
    match = re.match(r"^(?:sips?:)?(?:[^@]*@)?(\[[^\]]+\]|[^:;>]+)(?::(\d+))?", uri)
    if not match:
        raise SipParseError(f"no host in {uri!r}")
    return match.group(1).strip("[]"), int(match.group(2) or default_port)


def via_destination(via: str, source: tuple[str, int]) -> tuple[str, int]:
    """Where a response goes (RFC 3261 18.2.2, RFC 3581): received/rport from the request's source."""
    sent_by = via.split(None, 1)[1] if " " in via else via
    host, port = host_port_of(sent_by.split(";")[0])
    params = dict(p.partition("=")[::2] for p in (x.strip() for x in sent_by.split(";")[1:]))
    if "rport" in params:
        return source
    return params.get("received") or host, port


def new_tag() -> str:
    return secrets.token_hex(6)


def new_branch() -> str:
    return "z9hG4bK" + secrets.token_hex(8)


def response(request: SipMessage, status: int, *, to_tag: str = "", extra: list[tuple[str, str]] | None = None,
             body: bytes = b"", content_type: str = "") -> SipMessage:
    """A response that copies what RFC 3261 8.2.6 says to copy; `to_tag` is added to To when it has none."""
    to = request.get("To")
    if to_tag and not tag_of(to):
        to = f"{to};tag={to_tag}"
    headers = [("Via", v) for v in request.get_all("Via")]
    headers += [("Record-Route", v) for v in request.get_all("Record-Route")]
    headers += [("From", request.get("From")), ("To", to), ("Call-ID", request.call_id),
                ("CSeq", request.get("CSeq")), ("Server", "hotline-ivr")]
    headers += extra or []
    if body:
        headers.append(("Content-Type", content_type or "application/sdp"))
    return SipMessage(status=status, reason=REASONS.get(status, ""), headers=headers, body=body)
