"""Concurrent calls on one IVR process (run by hand): outgoing RTP gaps, lost digits, CPU.

sipp places N calls (at a few calls per second) that each key in a balance
lookup (1, a ten-digit account, #) and stay until the IVR says goodbye. Every
call's SDP points its media at one sink socket here, which notes the arrival
time of each packet per SSRC; gaps are the differences between consecutive
packets of a call. Lost digits: keys the store did not record as pressed.

    .venv/bin/python bench/ivr_bench.py --calls 200 --rate 10
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.ivr import sipp
from tests.service_process import ServiceProcess

KEYS = "13100000001#"


class Sink:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.arrivals: dict[int, list[float]] = defaultdict(list)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        recv, clock = self.sock.recv, time.monotonic
        while not self.stop.is_set():
            try:
                data = recv(2048)
            except TimeoutError:
                continue
            self.arrivals[int.from_bytes(data[8:12], "big")].append(clock())


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(len(values) * q))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--rate", type=float, default=10, help="new calls per second")
    args = parser.parse_args()

    var = Path(tempfile.mkdtemp(prefix="ivr-bench-"))
    port = sipp.free_udp_port()
    # Every call comes from sipp's one address, as through a proxy: calls in setup from it are
    # rate × (ring_seconds + the ACK's round trip), ~10 at 20 calls/s, so the per-source limit is raised.
    svc = ServiceProcess(var, "bench", bot=False, seed_accounts=20, env={
        "HOTLINE_SIP_ENABLED": "true", "HOTLINE_SIP_PORT": str(port),
        "HOTLINE_SIP_MAX_SETUP_PER_SOURCE": str(max(10, int(args.rate * 2)))})
    svc.start()
    sink = Sink()
    try:
        scenario = var / "caller.xml"
        scenario.write_text(sipp.scenario(KEYS, key_gap_ms=400, wait_for_bye_ms=120_000))
        assert svc.proc is not None
        cpu0, t0 = cpu_seconds(svc.proc.pid), time.monotonic()
        result = subprocess.run(
            [sipp.sipp_path(), f"127.0.0.1:{port}", "-sf", str(scenario), "-m", str(args.calls),
             "-l", str(args.calls), "-r", str(args.rate), "-i", "127.0.0.1", "-p", str(sipp.free_udp_port()),
             "-mi", "127.0.0.1", "-mp", str(sipp.free_udp_port()), "-set", "mport", str(sink.port),
             "-timeout", "600s", "-nostdin"],
            cwd=var, capture_output=True, text=True, timeout=900)
        elapsed, cpu = time.monotonic() - t0, cpu_seconds(svc.proc.pid) - cpu0
        time.sleep(2)
        svc_health = svc.api("/healthz")["components"]["sip"]
        calls = []
        before = None
        while True:
            page = svc.api("/api/calls?limit=200" + (f"&before_id={before}" if before else ""))["items"]
            calls += page
            if len(page) < 200:
                break
            before = page[-1]["id"]
    finally:
        sink.stop.set()
        svc.stop()
    gaps: list[float] = []
    per_call_rate: list[float] = []
    for times in sink.arrivals.values():
        if len(times) > 10:
            gaps += [(b - a) * 1000 for a, b in zip(times, times[1:])]
            per_call_rate.append((len(times) - 1) / (times[-1] - times[0]))
    gaps.sort()
    lost = sum(len(KEYS) - len(c["digits"]) for c in calls if c["digits"] != KEYS)
    report = {
        "calls": args.calls, "rate_cps": args.rate, "sipp_ok": result.returncode == 0,
        "calls_recorded": len(calls), "busy_486": svc_health.get("busy"),
        "self_served": sum(c["outcome"] == "self_served" for c in calls),
        "streams": len(sink.arrivals), "packets": sum(len(t) for t in sink.arrivals.values()),
        "gap_p50_ms": round(pct(gaps, 0.5), 2), "gap_p99_ms": round(pct(gaps, 0.99), 2),
        "gap_p999_ms": round(pct(gaps, 0.999), 2), "gap_max_ms": round(gaps[-1], 2),
        "packets_per_s_per_call_median": round(statistics.median(per_call_rate), 2),
        "lost_digits": lost, "cpu_percent_of_one_core": round(100 * cpu / elapsed, 1),
        "elapsed_s": round(elapsed, 1),
    }
    print(json.dumps(report, ensure_ascii=False))
    if result.returncode != 0:
        print(result.stdout[-2000:], result.stderr[-2000:], file=sys.stderr)


if __name__ == "__main__":
    main()
