"""Outbound lines next to 100 inbound calls in one service process (run by hand): RTP gaps and lost digits.

One `run_hotline.py serve` runs the inbound IVR (its asyncio SIP stack) and the
outbound dialler (pyVoIP, registered with Kamailio) on one event loop, as in
production. For each K:

  * sipp calls the IVR and keeps 100 calls up (-l 100), each keying in a
    balance lookup (1, an account, #) as in bench/ivr_bench.py;
  * once 100 are up, an outage is published for an area with K residents and
    its telephone notice queued (POST /api/outages/{id}/notify_calls); the
    dialler places the K calls at once through Kamailio (407 digest, record-
    routed) to a sipp UAS that answers, presses 0 twice (each replays the
    notice) and waits for the dialler's BYE, about a minute of audio;
  * K = 0 is the baseline: the 100 inbound calls alone for a minute;
  * when the K calls are over, sipp is told to stop softly (SIGUSR1): the
    inbound calls in progress finish.

Every call's SDP points its media at one of two sinks here (inbound,
outbound) that note the arrival time of each packet per SSRC; a gap is the
difference between consecutive packets of one call. Inbound gaps are counted
while the outbound calls are up. Lost digits: keys the store did not record
(inbound: of the 12 keys of a call; outbound: of the two 0s). Target: gap
p99.9 < 25 ms and no lost digit, for both directions.

    .venv/bin/python bench/outbound_bench.py --lines 2 4 6 8 12 16
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.ivr_bench import KEYS, Sink, cpu_seconds, pct
from tests.ivr import kamailio, sipp, sipp_uas
from tests.service_process import ServiceProcess

HERE = Path(__file__).resolve().parent.parent / "tests" / "ivr"
PASSWORD = "bench-dialler"
OUT_KEYS = "00"
INBOUND = 100
BASELINE_SECONDS = 60.0


def add_residents(db: Path, area: str, count: int, step: int) -> None:
    """`count` accounts with one phone each in `area` (written before the notice is queued)."""
    with sqlite3.connect(db) as conn:
        for i in range(count):
            cur = conn.execute(
                "INSERT INTO customers (account_number, name, address, area, meter_model, meter_size_dn,"
                " meter_serial, status, created_at) VALUES (?, ?, ?, ?, 'LXS-15', 15, ?, 'active', ?)",
                (f"39{step:03d}{i:05d}", f"住户{i}", f"{area}{i}号", area, f"B{step}-{i}",
                 dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(sep=" ")))
            conn.execute("INSERT INTO customer_phones (customer_id, phone) VALUES (?, ?)",
                         (cur.lastrowid, f"188{step:03d}{i:05d}"))


def all_calls(svc: ServiceProcess, after_id: int) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    before = None
    while True:
        page = svc.api("/api/calls?limit=200" + (f"&before_id={before}" if before else ""))["items"]
        calls += [c for c in page if c["id"] > after_id]
        if len(page) < 200 or page[-1]["id"] <= after_id:
            return calls
        before = page[-1]["id"]


def gaps_of(arrivals: dict[int, list[float]], start: float = 0.0, end: float = float("inf")) -> list[float]:
    """Gaps (ms) between consecutive packets of each stream, both inside [start, end]."""
    gaps: list[float] = []
    for times in arrivals.values():
        inside = [t for t in times if start <= t <= end]
        gaps += [(b - a) * 1000 for a, b in zip(inside, inside[1:], strict=False)]
    return sorted(gaps)


def streams_up(arrivals: dict[int, list[float]], at: float) -> int:
    return sum(1 for times in arrivals.values() if times and times[0] <= at <= times[-1])


def stop_softly(proc: subprocess.Popen[str], timeout: float) -> None:
    """SIGUSR1: sipp places no new call and exits once its calls are over; TERM/KILL if it does not."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGUSR1)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            kamailio.stop(proc)


def machine_busy(since: tuple[int, int] | None = None) -> tuple[int, int]:
    """(busy, total) jiffies of all cores from /proc/stat; with `since`, the difference."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle, total = fields[3] + fields[4], sum(fields[:8])
    busy = total - idle
    return (busy - since[0], total - since[1]) if since else (busy, total)


def own_busy() -> int:
    """CPU jiffies of this process and all its descendants (the service, sipp, Kamailio)."""
    parent, jiffies = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        parent[pid], jiffies[pid] = int(fields[1]), int(fields[11]) + int(fields[12])
    mine, grew = {os.getpid()}, True
    while grew:
        more = {pid for pid, ppid in parent.items() if ppid in mine} - mine
        grew, mine = bool(more), mine | more
    return sum(jiffies.get(pid, 0) for pid in mine)


def one_step(svc: ServiceProcess, k: int, step: int, carrier: int, ivr_port: int, work: Path) -> dict[str, Any]:
    """100 inbound calls, then K outbound calls placed at once (K = 0: the inbound calls alone for a minute)."""
    assert svc.proc is not None
    work.mkdir(parents=True, exist_ok=True)
    first_id = max((c["id"] for c in svc.api("/api/calls?limit=1")["items"]), default=0)
    area = f"压测{step}区"
    add_residents(svc.var / "hotline.db", area, k, step)
    in_sink, out_sink = Sink(), Sink()
    caller = work / "caller.xml"
    caller.write_text(sipp.scenario(KEYS, key_gap_ms=400, wait_for_bye_ms=120_000))
    inbound = subprocess.Popen(
        [sipp.sipp_path(), f"127.0.0.1:{ivr_port}", "-sf", str(caller), "-m", "100000", "-l", str(INBOUND),
         "-r", "20", "-i", "127.0.0.1", "-p", str(sipp.free_udp_port()), "-mi", "127.0.0.1",
         "-mp", str(sipp.free_udp_port()), "-set", "mport", str(in_sink.port), "-timeout", "900s", "-nostdin"],
        cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    phone: subprocess.Popen[str] | None = None
    phone_ok = True
    try:
        deadline = time.monotonic() + 30
        while streams_up(in_sink.arrivals, time.monotonic()) < INBOUND and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2)
        busy0, own0, cpu0, t0 = machine_busy(), own_busy(), cpu_seconds(svc.proc.pid), time.monotonic()
        if k == 0:
            time.sleep(BASELINE_SECONDS)
        else:
            (work / "phone").mkdir(exist_ok=True)
            (work / "phone" / "uas.xml").write_text(sipp_uas.scenario(
                keys=OUT_KEYS, first_key_after_ms=3000, key_gap_ms=1500, wait_for_bye_ms=180_000))
            phone = subprocess.Popen(
                [sipp.sipp_path(), "-sf", str(work / "phone" / "uas.xml"), "-m", str(k), "-i", "127.0.0.1",
                 "-p", str(carrier), "-mi", "127.0.0.1", "-mp", str(sipp.free_udp_port()),
                 "-set", "mport", str(out_sink.port), "-timeout", "300s", "-trace_err", "-nostdin"],
                cwd=work / "phone", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            time.sleep(0.5)
            now = dt.datetime.now(dt.UTC)
            outage = svc.api("/api/outages", {
                "areas": [area], "title": "管网改造计划停水", "detail": "请提前储水。", "planned": True,
                "starts_at": (now + dt.timedelta(days=1)).isoformat(),
                "ends_at": (now + dt.timedelta(days=1, hours=10)).isoformat()})
            queued = svc.api(f"/api/outages/{outage['id']}/notify_calls", {})["queued"]
            assert queued == k, queued
            try:
                out, err = phone.communicate(timeout=300)
            except subprocess.TimeoutExpired:
                kamailio.stop(phone)
                out, err = phone.communicate()
            phone_ok = phone.returncode == 0
            if not phone_ok:
                print(out[-1500:], err[-1500:], file=sys.stderr)
        elapsed, cpu, busy = time.monotonic() - t0, cpu_seconds(svc.proc.pid) - cpu0, machine_busy(busy0)
        own = own_busy() - own0
        window = (t0, time.monotonic())
        stop_softly(inbound, 120)
        inbound_ok = inbound.returncode == 0
        time.sleep(1.5)
    finally:
        for proc in (inbound, phone):
            if proc is not None:
                kamailio.stop(proc)
        for sink in (in_sink, out_sink):
            sink.stop.set()
            sink.thread.join(2)
            sink.sock.close()
    out_streams = [t for t in out_sink.arrivals.values() if len(t) > 10]
    if out_streams:  # inbound gaps while the outbound calls are up
        window = (min(t[0] for t in out_streams), max(t[-1] for t in out_streams))
    out_gaps, in_gaps = gaps_of(out_sink.arrivals), gaps_of(in_sink.arrivals, *window)
    calls = all_calls(svc, first_id)
    outbound = [c for c in calls if c["direction"] == "outbound"]
    inbound_calls = [c for c in calls if c["direction"] != "outbound"]
    out_lost = sum(max(0, len(OUT_KEYS) - c["digits"].count("0")) for c in outbound)
    out_lost += (k - len(outbound)) * len(OUT_KEYS)
    in_lost = sum(len(KEYS) - len(c["digits"]) for c in inbound_calls if c["digits"] != KEYS)
    samples = [window[0] + i for i in range(int(window[1] - window[0]))] or [window[0]]

    def q(gaps: list[float], at: float) -> float | None:
        return round(pct(gaps, at), 2) if gaps else None

    return {
        "lines": k, "outbound_calls": len(outbound),
        "outbound_answered": sum(c["outcome"] == "answered" for c in outbound),
        "window_s": round(window[1] - window[0], 1), "sipp_phone_ok": phone_ok, "sipp_caller_ok": inbound_ok,
        "inbound_up_min": min(streams_up(in_sink.arrivals, t) for t in samples), "inbound_calls": len(inbound_calls),
        "out_gap_p50_ms": q(out_gaps, 0.5), "out_gap_p999_ms": q(out_gaps, 0.999),
        "out_gap_max_ms": round(out_gaps[-1], 2) if out_gaps else None, "out_gaps": len(out_gaps),
        "in_gap_p50_ms": q(in_gaps, 0.5), "in_gap_p999_ms": q(in_gaps, 0.999),
        "in_gap_max_ms": round(in_gaps[-1], 2) if in_gaps else None, "in_gaps": len(in_gaps),
        "out_lost_digits": out_lost, "in_lost_digits": in_lost,
        "service_cpu_percent_of_one_core": round(100 * cpu / elapsed, 1),
        "machine_busy_percent_of_2_cores": round(100 * busy[0] / max(busy[1], 1), 1),
        # what else ran meanwhile (another engineer's work on this shared machine), out of both cores
        "others_busy_percent_of_2_cores": round(100 * max(busy[0] - own, 0) / max(busy[1], 1), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, nargs="+", default=[0, 2, 4, 6, 8, 12, 16],
                        help="outbound calls at once per step; 0 is the inbound calls alone")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # kill PID: sipp, Kamailio and the service stop too
    var = Path(tempfile.mkdtemp(prefix="outbound-bench-"))
    carrier, ivr_port = sipp.free_udp_port(), sipp.free_udp_port()
    rtp = 40000 + (sipp.free_udp_port() % 100) * 100
    rows = []
    with kamailio.running(HERE / "kamailio-proxy.cfg", var / "kamailio", password=PASSWORD, carrier=carrier) as kam:
        svc = ServiceProcess(var / "service", "bench", bot=False, seed_accounts=20, env={
            "HOTLINE_SIP_ENABLED": "true", "HOTLINE_SIP_PORT": str(ivr_port),
            "HOTLINE_SIP_MAX_SETUP_PER_SOURCE": "40",
            "HOTLINE_OUTBOUND_ENABLED": "true", "HOTLINE_OUTBOUND_REGISTRAR": f"127.0.0.1:{kam.port}",
            "HOTLINE_OUTBOUND_USERNAME": "dialler", "HOTLINE_OUTBOUND_PASSWORD": PASSWORD,
            "HOTLINE_OUTBOUND_CALLER_ID": "96345", "HOTLINE_OUTBOUND_SIP_PORT": str(sipp.free_udp_port()),
            # the number of lines in use is set by the K residents queued per step; the limit stays above it
            "HOTLINE_OUTBOUND_LINES": str(max(1, *args.lines)), "HOTLINE_OUTBOUND_CALLING_HOURS": "00:00-23:59:59",
            "HOTLINE_OUTBOUND_INTERVAL_SECONDS": "0.5", "HOTLINE_OUTBOUND_RING_SECONDS": "20",
            "HOTLINE_OUTBOUND_RTP_PORT_MIN": str(rtp), "HOTLINE_OUTBOUND_RTP_PORT_MAX": str(rtp + 98)})
        svc.start()
        try:
            deadline = time.monotonic() + 20
            while not svc.api("/healthz")["components"].get("outbound", {}).get("registered"):
                if time.monotonic() > deadline:
                    raise AssertionError("the dialler did not register:\n" + svc.log_tail())
                time.sleep(0.3)
            for step, k in enumerate(args.lines):
                row = one_step(svc, k, step, carrier, ivr_port, var / f"k{k}")
                print(json.dumps(row, ensure_ascii=False), flush=True)
                rows.append(row)
        finally:
            svc.stop()
    print()
    print("| K | inbound up | out gap p50 / p99.9 / max (ms) | in gap p50 / p99.9 / max (ms) | digits lost out / in"
          " | service CPU | machine busy (others) | clean |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        clean = ((r["out_gap_p999_ms"] or 0) < 25 and (r["in_gap_p999_ms"] or 0) < 25
                 and r["out_lost_digits"] == 0 and r["in_lost_digits"] == 0 and r["outbound_answered"] == r["lines"])
        print(f"| {r['lines']} | {r['inbound_up_min']} | {r['out_gap_p50_ms']} / {r['out_gap_p999_ms']} / "
              f"{r['out_gap_max_ms']} | {r['in_gap_p50_ms']} / {r['in_gap_p999_ms']} / {r['in_gap_max_ms']} | "
              f"{r['out_lost_digits']} / {r['in_lost_digits']} | {r['service_cpu_percent_of_one_core']} % | "
              f"{r['machine_busy_percent_of_2_cores']} % ({r['others_busy_percent_of_2_cores']} %) | "
              f"{'yes' if clean else 'no'} |")
    print(f"\nwork files: {var}")


if __name__ == "__main__":
    main()
