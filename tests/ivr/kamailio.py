"""Debian's Kamailio on 127.0.0.1 for tests: started from a config template, always stopped (TERM, then KILL)."""
from __future__ import annotations

import contextlib
import glob
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.ivr import sipp


@dataclass
class Kamailio:
    port: int
    work: Path

    def log(self) -> str:
        return (self.work / "kamailio.log").read_text(errors="replace")


@contextlib.contextmanager
def running(template: Path, work: Path, **values: str | int) -> Iterator[Kamailio]:
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
        proc = subprocess.Popen([binary, "-f", str(work / "kamailio.cfg"), "-DD", "-E", "-Y", str(work)],
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            time.sleep(1.5)
            if proc.poll() is not None:
                raise AssertionError("Kamailio did not start:\n" + (work / "kamailio.log").read_text()[-3000:])
            yield Kamailio(port, work)
        finally:
            stop(proc)


def stop(proc: subprocess.Popen[bytes] | subprocess.Popen[str], wait: float = 5.0) -> None:
    """SIGTERM, then SIGKILL if it has not gone after `wait` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(wait)
