"""API hardening: security headers, deeply nested JSON."""
from __future__ import annotations

from tests.conftest import SERVICE


async def test_every_response_says_nosniff_and_staff_pages_refuse_framing(client) -> None:
    for path, headers, status in [("/api/tickets", SERVICE, 200), ("/api/tickets", {}, 401),
                                  ("/api/tickets/GD20990101-0001", SERVICE, 404), ("/api/openapi.json", {}, 200),
                                  ("/console", {}, 200), ("/healthz", {}, 200), ("/chat", {}, 200),
                                  ("/no/such/page", {}, 404)]:
        resp = await client.get(path, headers=headers, allow_redirects=False)
        assert resp.status == status, path
        assert resp.headers["X-Content-Type-Options"] == "nosniff", path
        if path.startswith(("/api/", "/console")):
            assert resp.headers["X-Frame-Options"] == "DENY", path
            # A page that sets a stricter policy itself (the console: no-referrer) keeps it.
            assert resp.headers["Referrer-Policy"] in {"same-origin", "no-referrer"}, path


async def test_json_nested_deeper_than_the_parser_goes_is_a_clear_400(client) -> None:
    for depth in (100_000, 5_000):
        resp = await client.post("/api/tickets", data=b"[" * depth + b"]" * depth, headers=SERVICE)
        assert resp.status == 400
        assert (await resp.json())["error"] == {"code": "invalid_json",
                                                "message": "the request body is nested too deeply"}
        nested = b'{"description": ' + b'{"a": ' * depth + b"1" + b"}" * depth + b"}"
        resp = await client.post("/api/tickets", data=nested, headers=SERVICE)
        assert resp.status == 400 and (await resp.json())["error"]["code"] == "invalid_json"
    resp = await client.post("/api/auth/login", data=b"[" * 100_000, headers={"Content-Type": "application/json"})
    assert resp.status == 400
    assert (await client.get("/healthz")).status == 200
