"""Programs the tests start (tests/peers.py) are stopped with everything they forked, and a survivor is named."""
from __future__ import annotations

import subprocess

from tests import peers
from tests.conftest import until

# A program that forks a worker deaf to SIGTERM, as a Kamailio worker busy at teardown can be.
FORKING = ["sh", "-c", "sh -c 'trap \"\" TERM; echo ready; while :; do sleep 1; done' & exec sleep 60"]


def test_stopping_a_peer_stops_the_workers_it_forked() -> None:
    proc = peers.popen("forking test peer", FORKING, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    group = proc.pid
    try:
        until(lambda: len(peers.members(group)) >= 2, 5, "the program and its worker run")
        assert [g for what, g, _ in peers.survivors() if what == "forking test peer"] == [group]  # named
    finally:
        peers.stop(proc, wait=0.5)
    assert peers.members(group) == []  # the worker too: stopping only the program left it orphaned
    assert all(what != "forking test peer" for what, _, _ in peers.survivors())
