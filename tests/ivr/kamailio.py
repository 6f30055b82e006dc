"""Debian's Kamailio on 127.0.0.1 for tests: started from a config template, always stopped with every worker
it forked (its process group: TERM, then KILL)."""
from __future__ import annotations

import contextlib
import glob
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests import peers
from tests.conftest import until
from tests.ivr import sipp

stop = peers.stop  # the group of a peer: Kamailio and its workers, sipp


@dataclass
class Kamailio:
    port: int
    work: Path

    def log(self) -> str:
        return (self.work / "kamailio.log").read_text(errors="replace")


def _port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


@contextlib.contextmanager
def running(template: Path, work: Path, stop_wait: float = 5.0, **values: str | int) -> Iterator[Kamailio]:
    """Kamailio with @PORT@, @MODULES@ and the given @NAME@ values filled in; stopped however the test ends."""
    binary = shutil.which("kamailio") or "/usr/sbin/kamailio"
    modules = next(iter(glob.glob("/usr/lib/*/kamailio/modules") + glob.glob("/usr/lib/kamailio/modules")), None)
    if not Path(binary).exists() or modules is None:
        raise RuntimeError("Kamailio is missing: scripts/setup.sh installs Debian's kamailio")
    port = sipp.free_udp_port()
    text = template.read_text().replace("@PORT@", str(port)).replace("@MODULES@", modules + "/")
    for name, value in values.items():
        text = text.replace(f"@{name.upper()}@", str(value))
    work.mkdir(parents=True, exist_ok=True)
    (work / "kamailio.cfg").write_text(text)
    with open(work / "kamailio.log", "w") as log:
        proc = peers.popen("kamailio", [binary, "-f", str(work / "kamailio.cfg"), "-DD", "-E", "-Y", str(work)],
                           stdout=log, stderr=subprocess.STDOUT)
        try:
            until(lambda: proc.poll() is not None or _port_taken(port), 15, "Kamailio listens")
            if proc.poll() is not None:
                raise AssertionError("Kamailio did not start:\n" + (work / "kamailio.log").read_text()[-3000:])
            yield Kamailio(port, work)
        finally:
            stop(proc, stop_wait)
