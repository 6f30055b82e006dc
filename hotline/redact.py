"""Personal values out of log lines (PIPL art. 51): one helper for code, one for URLs, one net for the rest.

- `mask(value)` is what a log call writes instead of a phone number, openid, web-chat
  client id, token or name: digits keep their last four (`*******8000`, enough to tell
  two callers apart on the phone), anything else becomes a short keyed hash (`#3fa2c1d0e5`),
  the same for the same value within one process, useless outside it.
- `redact_url(text)` is what the access log writes for a request line or a Referer:
  every query value dropped (`?client=-&q=-`), and path segments that are phone or
  account numbers, or tokens (survey links), replaced by `-`.
- `LogScrubber` is a logging filter on every handler: whatever a log call or an
  exception message still carries (a mobile number, `openid=…`) is masked before it is
  written, whatever the format.
"""
from __future__ import annotations

import hashlib
import logging
import re
import secrets
from urllib.parse import unquote

_KEY = secrets.token_bytes(16)  # per process: a hash correlates lines, never identifies anyone

# Path prefixes whose next segment is someone's identifier or a credential.
SECRET_SEGMENT_AFTER = ("/survey/", "/api/customers/", "/s/")
_DIGITS = re.compile(r"\+?\d[\d\- ]{5,}\d")  # phone and account numbers (ticket numbers have letters)
_TOKENISH = re.compile(r"[A-Za-z0-9_\-.~%=]{20,}")  # random tokens, signed links
_MOBILE = re.compile(r"(?<![\dA-Za-z])(?:\+?86[- ]?)?1[3-9]\d(?:[- ]?\d{4}){2}(?![\dA-Za-z])")
_LANDLINE = re.compile(r"(?<![\dA-Za-z])0\d{2,3}-\d{7,8}(?![\dA-Za-z])")
_KEYED = re.compile(r"(?i)\b(openid|client|client_id|token|access_token|secret|password|signature|msg_signature|nonce|"
                    r"echostr|phone|account|account_number|q|query|sender|from_user)"
                    r"(=|: ?)([^\s&\"',;)]+)")


def mask(value: object) -> str:
    """A log-safe stand-in for a personal value (see the module's docstring)."""
    text = "" if value is None else str(value)
    if not text:
        return "-"
    digits = re.sub(r"[\s\-+]", "", text)
    if digits.isdigit() and len(digits) >= 5:
        return "*" * (len(digits) - 4) + digits[-4:]
    return "#" + hashlib.blake2b(text.encode("utf-8", "surrogateescape"), key=_KEY, digest_size=5).hexdigest()


def _segment(segment: str) -> str:
    plain = unquote(segment)
    if _DIGITS.fullmatch(plain) or _TOKENISH.fullmatch(segment):
        return "-"
    return segment


def redact_path(path: str) -> str:
    """A URL path with identifier and token segments replaced by `-`."""
    parts = path.split("/")
    out = []
    for i, part in enumerate(parts):
        before = "/".join(parts[:i]) + "/"
        out.append("-" if part and before.endswith(SECRET_SEGMENT_AFTER) else _segment(part))
    return "/".join(out)


def redact_query(query: str) -> str:
    """Every value of a query string replaced by `-` (the names stay: they say what was asked)."""
    return "&".join(f"{item.partition('=')[0]}=-" if "=" in item else item for item in query.split("&") if item)


def redact_url(text: str) -> str:
    """A request line (`GET /p?q HTTP/1.1`) or a URL (`https://host/p?q#f`) without personal values."""
    method, space, rest = ("", "", text)
    if " " in text and not text.startswith(("http://", "https://", "/")):
        method, space, rest = text.partition(" ")
    target, space2, tail = rest.partition(" ")
    prefix = ""
    if "://" in target:
        scheme, _, after = target.partition("://")
        host, slash, path = after.partition("/")
        prefix, target = f"{scheme}://{host}", slash + path
    target = target.partition("#")[0]
    path, question, query = target.partition("?")
    cleaned = prefix + redact_path(path) + (("?" + redact_query(query)) if question else "")
    return f"{method}{space}{cleaned}{space2}{tail}"


def scrub(text: str) -> str:
    """Mobile and landline numbers and `openid=…`-style values in free text, masked."""
    text = _KEYED.sub(lambda m: m.group(0) if m.group(3) == "-" else f"{m.group(1)}{m.group(2)}{mask(m.group(3))}",
                      text)
    text = _MOBILE.sub(lambda m: mask(m.group(0)), text)
    return _LANDLINE.sub(lambda m: mask(m.group(0)), text)


class LogScrubber(logging.Filter):
    """The net under every log call: the record's message and exception text, scrubbed once."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_scrubbed", False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken format call: leave it to the formatter's own error report
            return True
        record.msg, record.args = scrub(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        record._scrubbed = True
        return True


def install(root: logging.Logger | None = None) -> None:
    """Put the scrubber on every handler of the root logger (call after logging is configured)."""
    logger = root or logging.getLogger()
    for handler in logger.handlers:
        if not any(isinstance(f, LogScrubber) for f in handler.filters):
            handler.addFilter(LogScrubber())
