"""The IVR registered to a real registrar (Debian's Kamailio) with digest auth, called through it."""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ivr import sipp
from tests.ivr.kamailio import running
from tests.service_process import ServiceProcess

CONFIG = Path(__file__).with_name("kamailio-registrar.cfg")
PASSWORD = "s3cret-ivr"


@pytest.fixture(scope="module")
def kamailio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    # Stopped with its workers (SIGTERM, then SIGKILL after 10 s): a Kamailio slow to exit never fails the run.
    with running(CONFIG, tmp_path_factory.mktemp("kamailio"), stop_wait=10.0, password=PASSWORD) as registrar:
        yield registrar.port


def _ivr(tmp: Path, registrar_port: int, password: str) -> ServiceProcess:
    return ServiceProcess(tmp, "kam-token", bot=False, seed_accounts=20, env={
        "HOTLINE_SIP_ENABLED": "true", "HOTLINE_SIP_PORT": str(sipp.free_udp_port()),
        "HOTLINE_SIP_REGISTRAR": f"127.0.0.1:{registrar_port}", "HOTLINE_SIP_USERNAME": "ivr",
        "HOTLINE_SIP_PASSWORD": password, "HOTLINE_SIP_DOMAIN": "127.0.0.1", "HOTLINE_SIP_RING_SECONDS": "0.2"})


def _registration(svc: ServiceProcess, registered: bool, seconds: float = 15) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        status = svc.api("/healthz")["components"]["sip"]
        settled = registered or bool(status["registration"]["last_error"])
        if (status["registration"]["registered"] is registered and settled) or time.monotonic() > deadline:
            return status


def test_registered_with_digest_and_called_through_the_registrar(kamailio: int, tmp_path: Path) -> None:
    svc = _ivr(tmp_path / "ivr", kamailio, PASSWORD).start()
    try:
        status = _registration(svc, True)
        assert status["up"] and status["mode"] == "registered" and status["registration"]["registered"]
        result, heard = sipp.call(f"127.0.0.1:{kamailio}", sipp.scenario("13100000002#", caller="13700137000",
                                                                         callee="ivr"), tmp_path / "sipp")
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert 49 <= heard.packets_per_second() <= 51
        time.sleep(1)
        call = svc.api("/api/calls?caller=13700137000")["items"][0]
        assert (call["callee"], call["account_number"], call["outcome"]) == ("ivr", "3100000002", "self_served")
    finally:
        svc.stop()


def test_a_refused_registration_is_retried_and_reported(kamailio: int, tmp_path: Path) -> None:
    svc = _ivr(tmp_path / "ivr", kamailio, "wrong-password").start()
    try:
        status = _registration(svc, False, seconds=3)
        assert status["up"] is False and "401" in status["registration"]["last_error"]
        first = status["registration"]["attempts"]
        time.sleep(4)
        assert svc.api("/healthz")["components"]["sip"]["registration"]["attempts"] > first  # still trying
    finally:
        svc.stop()
