"""Registration to a registrar (RFC 3261 10, digest auth RFC 2617/7616 with MD5, qop=auth or none).

Supervised for a 24-hour service: a refused or unanswered REGISTER is retried
with back-off for as long as the service runs (pyVoIP gives up after three
tries and stops its phone), and a registration is refreshed before it expires.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import secrets

from hotline.ivr.sip import message as sip
from hotline.ivr.sip.server import SipServer

log = logging.getLogger(__name__)


class RegistrationFailed(Exception):
    pass


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def digest_authorization(challenge: str, method: str, uri: str, username: str, password: str,
                         nc: int = 1, cnonce: str | None = None) -> str:
    """The Authorization value answering a WWW-/Proxy-Authenticate challenge."""
    scheme, _, rest = challenge.partition(" ")
    if scheme.lower() != "digest":
        raise RegistrationFailed(f"unsupported authentication scheme {scheme!r}")
    params = {k.lower(): v.strip('"') for k, v in re.findall(r'(\w+)=("[^"]*"|[^,\s]+)', rest)}
    if params.get("algorithm", "MD5").upper() != "MD5":
        raise RegistrationFailed(f"unsupported digest algorithm {params['algorithm']}")
    realm, nonce = params.get("realm", ""), params.get("nonce", "")
    ha1, ha2 = _md5(f"{username}:{realm}:{password}"), _md5(f"{method}:{uri}")
    fields = [f'username="{username}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"', "algorithm=MD5"]
    qops = [q.strip() for q in params.get("qop", "").split(",") if q.strip()]
    if "auth" in qops:
        cnonce = cnonce or secrets.token_hex(8)
        response = _md5(f"{ha1}:{nonce}:{nc:08x}:{cnonce}:auth:{ha2}")
        fields += ["qop=auth", f"nc={nc:08x}", f'cnonce="{cnonce}"']
    else:
        response = _md5(f"{ha1}:{nonce}:{ha2}")
    fields.append(f'response="{response}"')
    if "opaque" in params:
        fields.append(f'opaque="{params["opaque"]}"')
    return "Digest " + ", ".join(fields)


class Registration:
    def __init__(self, server: SipServer, registrar: str, username: str, password: str, domain: str = "",
                 expires: int = 300) -> None:
        self.server = server
        self.registrar = sip.host_port_of(registrar)
        self.username, self.password = username, password
        self.domain = domain or self.registrar[0]
        self.expires = expires
        self.call_id = f"{secrets.token_hex(8)}@{server.public_host}"
        self.tag = sip.new_tag()
        self.cseq = 0
        self.registered = False
        self.last_error = ""
        self.attempts = 0

    def _register(self, authorization: tuple[str, str] | None = None) -> sip.SipMessage:
        self.cseq += 1
        uri = f"sip:{self.domain}"
        aor = f"sip:{self.username}@{self.domain}"
        headers = [("Via", f"SIP/2.0/UDP {self.server.public_host}:{self.server.port};branch={sip.new_branch()};rport"),
                   ("Max-Forwards", "70"), ("From", f"<{aor}>;tag={self.tag}"), ("To", f"<{aor}>"),
                   ("Call-ID", self.call_id), ("CSeq", f"{self.cseq} REGISTER"),
                   ("Contact", f"<sip:{self.username}@{self.server.public_host}:{self.server.port}>"),
                   ("Expires", str(self.expires)), ("User-Agent", "hotline-ivr")]
        if authorization:
            headers.append(authorization)
        return sip.SipMessage(method="REGISTER", uri=uri, headers=headers)

    async def register_once(self) -> int:
        """One registration; returns the expiry the registrar granted."""
        self.attempts += 1
        answer = await self.server.transact(self._register(), self.registrar, timeout=16)
        for _ in range(2):
            if answer is None:
                raise RegistrationFailed(f"no answer from the registrar {self.registrar[0]}:{self.registrar[1]}")
            if answer.status not in (401, 407):
                break
            header = "WWW-Authenticate" if answer.status == 401 else "Proxy-Authenticate"
            reply = "Authorization" if answer.status == 401 else "Proxy-Authorization"
            value = digest_authorization(answer.get(header), "REGISTER", f"sip:{self.domain}", self.username,
                                         self.password)
            answer = await self.server.transact(self._register((reply, value)), self.registrar, timeout=16)
        assert answer is not None
        if not 200 <= answer.status < 300:
            raise RegistrationFailed(f"the registrar answered {answer.status} {answer.reason}")
        granted = re.search(r";\s*expires=(\d+)", answer.get("Contact"))
        return int(granted.group(1)) if granted else int(answer.get("Expires") or self.expires)

    async def run(self) -> None:
        """Register, refresh at 80 % of the expiry, and retry failures with back-off, until cancelled."""
        delay = 1.0
        while True:
            try:
                granted = await self.register_once()
            except RegistrationFailed as exc:
                if self.registered or not self.last_error:
                    log.warning("SIP registration failed: %s; retrying", exc)
                self.registered, self.last_error = False, str(exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)
                continue
            if not self.registered:
                log.info("registered as %s at %s:%d for %d s", self.username, *self.registrar, granted)
            self.registered, self.last_error, delay = True, "", 1.0
            await asyncio.sleep(max(granted * 0.8, 5.0))

    def status(self) -> dict[str, object]:
        return {"registrar": f"{self.registrar[0]}:{self.registrar[1]}", "registered": self.registered,
                "attempts": self.attempts, "last_error": self.last_error}
