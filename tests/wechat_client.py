"""An independent WeChat push client for tests: the real wire format, without wechatpy.

Safe mode per WeChat's documentation: key = base64(EncodingAESKey + "="),
AES-256-CBC with iv = key[:16], plaintext = 16 random bytes + 4-byte big-endian
length + xml + appid, PKCS#7 padding to 32-byte blocks, msg_signature = sha1 of
the sorted, joined [token, timestamp, nonce, encrypt].
"""
from __future__ import annotations

import base64
import hashlib
import os
import re
import struct
import time

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

TOKEN = "hotline-test-token"
APP_ID = "wx1234567890abcdef"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 characters


def _sha1(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def _key() -> bytes:
    return base64.b64decode(AES_KEY + "=")


def encrypt(xml: str) -> str:
    key = _key()
    raw = os.urandom(16) + struct.pack(">I", len(xml.encode())) + xml.encode() + APP_ID.encode()
    pad = 32 - len(raw) % 32
    raw += bytes([pad]) * pad
    enc = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(enc.update(raw) + enc.finalize()).decode()


def decrypt(encrypted: str) -> str:
    key = _key()
    dec = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    raw = dec.update(base64.b64decode(encrypted)) + dec.finalize()
    raw = raw[:-raw[-1]]
    length = struct.unpack(">I", raw[16:20])[0]
    assert raw[20 + length:].decode() == APP_ID
    return raw[20:20 + length].decode()


def message(kind: str, openid: str, msg_id: int | None = None, **fields: str) -> str:
    body = "".join(f"<{k}><![CDATA[{v}]]></{k}>" if not str(v).replace(".", "").isdigit() else f"<{k}>{v}</{k}>"
                   for k, v in fields.items())
    mid = f"<MsgId>{msg_id}</MsgId>" if msg_id is not None else ""
    return (f"<xml><ToUserName><![CDATA[gh_hotline]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[{kind}]]></MsgType>{body}{mid}</xml>")


def signed_query(mode: str, encrypted: str | None = None, token: str = TOKEN, timestamp: int | None = None,
                 nonce: str | None = None) -> dict[str, str]:
    """The query WeChat signs; a fresh timestamp and random nonce unless given (to test stale ones and replays)."""
    timestamp = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or "n" + os.urandom(4).hex()
    query = {"signature": _sha1(token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce,
             "openid": "x"}
    if mode == "aes":
        query.update(encrypt_type="aes", msg_signature=_sha1(token, timestamp, nonce, encrypted or ""))
    return query


def push(xml: str, mode: str = "plain", token: str = TOKEN, timestamp: int | None = None,
         nonce: str | None = None) -> tuple[dict[str, str], str]:
    """(query, body) of a push in plaintext, compatible or safe mode."""
    if mode == "plain":
        return signed_query("plain", token=token, timestamp=timestamp, nonce=nonce), xml
    encrypted = encrypt(xml)
    if mode == "compatible":
        return signed_query("aes", encrypted, token, timestamp, nonce), xml.replace(
            "</xml>", f"<Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>")
    return signed_query("aes", encrypted, token, timestamp, nonce), (
        f"<xml><ToUserName><![CDATA[gh_hotline]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>")


def reply_text(body: str) -> str:
    """The text of a passive reply, decrypting a safe-mode one."""
    match = re.search(r"<Encrypt><!\[CDATA\[(.*?)\]\]></Encrypt>", body, re.S)
    if match:
        body = decrypt(match.group(1))
    found = re.search(r"<Content><!\[CDATA\[(.*?)\]\]></Content>", body, re.S)
    return found.group(1) if found else ""
