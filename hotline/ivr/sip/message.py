"""SIP messages (RFC 3261): parse what peers send, build what we answer.

Tolerant where real peers are sloppy (compact header names, empty headers,
folded lines, bare LF) and strict where it matters: a request needs Via,
From, To, Call-ID and CSeq (else SipParseError: dropped, no answer is
possible); and every value we act on is checked here, where it is parsed
(the top Via's host, port, received and rport; CSeq; Content-Length;
Contact and Record-Route of an INVITE). A message that is SIP but carries
an invalid value raises SipInvalid, which holds the message so that a
request can still get its 400.
"""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field

from hotline.ivr.sip.addresses import InvalidAddress, check_host, ip_literal, port_number

COMPACT = {"v": "Via", "f": "From", "t": "To", "i": "Call-ID", "m": "Contact", "l": "Content-Length",
           "c": "Content-Type", "k": "Supported", "s": "Subject", "e": "Content-Encoding", "o": "Event",
           "r": "Refer-To", "b": "Referred-By", "u": "Allow-Events", "x": "Session-Expires"}
CANONICAL = {n.lower(): n for n in (
    "Via", "From", "To", "Call-ID", "CSeq", "Contact", "Content-Length", "Content-Type", "Max-Forwards",
    "Record-Route", "Route", "Allow", "Supported", "User-Agent", "Server", "Event", "Refer-To", "Referred-By",
    "Subscription-State", "Expires", "WWW-Authenticate", "Authorization", "Proxy-Authenticate",
    "Proxy-Authorization", "Warning", "Accept", "Allow-Events", "Reason")}
REQUIRED = ("Via", "From", "To", "Call-ID", "CSeq")
REASONS = {100: "Trying", 180: "Ringing", 200: "OK", 202: "Accepted", 400: "Bad Request", 403: "Forbidden",
           405: "Method Not Allowed",
           481: "Call/Transaction Does Not Exist", 486: "Busy Here", 487: "Request Terminated",
           488: "Not Acceptable Here", 500: "Server Internal Error", 501: "Not Implemented", 503: "Service Unavailable"}
_FIRST_REQUEST = re.compile(r"^([A-Z]+) (\S+) SIP/2\.0$")
_FIRST_RESPONSE = re.compile(r"^SIP/2\.0 ([1-6][0-9]{2}) ?(.*)$")
_CSEQ = re.compile(r"^([0-9]{1,10})\s+([A-Za-z]+)$")
MAX_HEADERS = 200
MAX_VIAS = 70
MAX_CALL_ID = 255


class SipParseError(ValueError):
    """Not SIP, or SIP without what a response needs: the datagram is dropped (and counted)."""


class SipInvalid(SipParseError):
    """SIP with an invalid value: a request gets 400 (at its source address), a response is dropped."""

    def __init__(self, message: SipMessage, reason: str) -> None:
        super().__init__(reason)
        self.message, self.reason = message, reason


@dataclass(frozen=True)
class Via:
    transport: str
    host: str  # an IP literal (normalized) or a host name (checked syntax)
    port: int | None
    received: str | None  # an IP literal
    rport: bool


@dataclass
class SipMessage:
    method: str | None = None  # a request's method; None for a response
    uri: str = ""
    status: int = 0
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    reply_to: tuple[str, int] | None = None  # a request's checked response destination (an IP literal)

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
        match = _CSEQ.match(self.get("CSeq").strip())
        if not match or int(match.group(1)) >= 2**31:
            raise SipParseError("bad CSeq")
        return int(match.group(1)), match.group(2)

    def to_bytes(self) -> bytes:
        first = f"{self.method} {self.uri} SIP/2.0" if self.is_request else f"SIP/2.0 {self.status} {self.reason}"
        lines = [first] + [f"{k}: {v}" for k, v in self.headers if k != "Content-Length"]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


def _split_list(value: str) -> list[str]:
    """A comma-separated header (Via, Record-Route), not splitting inside <…> or quotes."""
    parts: list[str] = []
    current: list[str] = []
    depth, quoted = 0, False
    for char in value:
        if char == '"':
            quoted = not quoted
        elif char == "<" and not quoted:
            depth += 1
        elif char == ">" and not quoted:
            depth = max(depth - 1, 0)
        if char == "," and not depth and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts if part.strip()]


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
        if canonical in ("Via", "Record-Route"):
            message.headers += [(canonical, v) for v in _split_list(value)]
        else:
            message.headers.append((canonical, value))
    if len(message.headers) > MAX_HEADERS:
        raise SipParseError("too many headers")
    for name in REQUIRED:
        if not message.get(name):
            raise SipParseError(f"missing {name}")
    message.body = body
    _validate(message, body)
    return message


def _validate(message: SipMessage, body: bytes) -> None:
    """The values we act on; SipInvalid (with the message, for its 400) when one is wrong."""
    try:
        number, method = message.cseq
    except SipParseError:
        raise SipInvalid(message, "bad CSeq") from None
    if message.is_request and method != message.method:
        raise SipInvalid(message, "CSeq method differs from the request's")
    if len(message.call_id) > MAX_CALL_ID or any(c.isspace() for c in message.call_id):
        raise SipInvalid(message, "bad Call-ID")
    vias = message.get_all("Via")
    if len(vias) > MAX_VIAS:
        raise SipInvalid(message, "too many Via headers")
    try:
        parse_via(vias[0])
    except SipParseError as exc:
        raise SipInvalid(message, f"bad Via: {exc}") from None
    lengths = {v.strip() for v in message.get_all("Content-Length")}
    if lengths:
        if len(lengths) > 1:
            raise SipInvalid(message, "conflicting Content-Length")
        length = lengths.pop()
        if not re.fullmatch(r"[0-9]{1,5}", length):
            raise SipInvalid(message, "bad Content-Length")
        if int(length) > len(body):  # RFC 3261 18.3: a request gets 400, a response is discarded
            raise SipInvalid(message, "Content-Length beyond the datagram")
        message.body = body[:int(length)]
    if message.method == "INVITE":
        for name in ("Contact", "Record-Route"):
            for value in message.get_all(name):
                try:
                    host_port_of(uri_of(value))
                except SipParseError as exc:
                    raise SipInvalid(message, f"bad {name}: {exc}") from None


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
    """The checked host (IP literal or host name) and port of a SIP URI or host[:port]."""
    match = re.match(r"^(?:sips?:)?(?:[^@<>]*@)?(\[[^\]]*\]|[^:;?>\s]*)(?::([^;?>\s]*))?(?:[;?>].*)?$", uri.strip())
    if not match:
        raise SipParseError(f"no host in {uri[:60]!r}")
    try:
        host = check_host(match.group(1))
        port = port_number(match.group(2)) if match.group(2) is not None else default_port
    except InvalidAddress as exc:
        raise SipParseError(str(exc)) from None
    return host, port


def parse_via(via: str) -> Via:
    """The top Via's sent-by and the parameters responses are routed by, every one checked."""
    protocol, _, rest = via.strip().partition(" ")
    parts = protocol.split("/")
    if len(parts) != 3 or parts[0].upper() != "SIP" or parts[1] != "2.0" or not parts[2].isalpha():
        raise SipParseError(f"bad protocol {protocol[:30]!r}")
    sent_by, *raw_params = [p.strip() for p in rest.strip().split(";")]
    host, port = _sent_by(sent_by)
    received, rport = None, False
    for param in raw_params:
        name, has_value, value = param.partition("=")
        name, value = name.strip().lower(), value.strip()
        if name == "received":
            address = ip_literal(value)
            if address is None:
                raise SipParseError(f"bad received {value[:40]!r}")
            received = str(address)
        elif name == "rport":
            if has_value:
                try:
                    port_number(value)
                except InvalidAddress as exc:
                    raise SipParseError(str(exc)) from None
            rport = True
    return Via(parts[2].upper(), host, port, received, rport)


def _sent_by(text: str) -> tuple[str, int | None]:
    match = re.fullmatch(r"(\[[^\]]*\]|[^:\s]+)\s*(?::\s*([^\s]*))?", text)
    if not match:
        raise SipParseError(f"bad sent-by {text[:40]!r}")
    try:
        return check_host(match.group(1)), port_number(match.group(2)) if match.group(2) is not None else None
    except InvalidAddress as exc:
        raise SipParseError(str(exc)) from None


def via_destination(via: str, source: tuple[str, int]) -> tuple[str, int]:
    """Where a response goes (RFC 3261 18.2.2, RFC 3581): received/rport from the request's source.

    The host may be a name (the caller resolves it, or refuses); a Via that does not parse goes to
    the source, which is also where a refusal of it goes."""
    try:
        parsed = parse_via(via)
    except SipParseError:
        return source
    if parsed.rport:
        return source
    return parsed.received or parsed.host, parsed.port or 5060


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
    if status < 300:  # dialog-creating answers only (RFC 3261 12.1.1); refusals stay small
        headers += [("Record-Route", v) for v in request.get_all("Record-Route")]
    headers += [("From", request.get("From")), ("To", to), ("Call-ID", request.call_id),
                ("CSeq", request.get("CSeq")), ("Server", "hotline-ivr")]
    headers += extra or []
    if body:
        headers.append(("Content-Type", content_type or "application/sdp"))
    return SipMessage(status=status, reason=REASONS.get(status, ""), headers=headers, body=body)
