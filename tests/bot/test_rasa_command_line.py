"""Rasa's API token reaches `rasa run` whatever its first character: a generated token begins with "-"
once in 64 starts, and passed as a word of its own argparse takes it for an option and the bot stays down.

Parsed here by Rasa's own argument parser (in the bot's environment, .venv-rasa), without starting Rasa;
tests/bot/test_bot_processes.py starts the real Rasa with such a token.
"""
from __future__ import annotations

import json
import subprocess

import pytest

from hotline.config import ROOT
from hotline.rasa.processes import PYTHON

RUNTIME = ROOT / "hotline" / "rasa" / "runtime"
PARSE = f"""
import json, sys
sys.path.insert(0, {str(RUNTIME)!r})
import rasa_server
from rasa.__main__ import create_argument_parser
tokens = json.loads(sys.argv[1])
argv = [rasa_server.rasa_argv(t, ["--port", "5005", "--interface", "127.0.0.1"]) for t in tokens]
parsed = [create_argument_parser().parse_args(a[1:]) for a in argv]
print(json.dumps([[p.auth_token, p.port, p.enable_api] for p in parsed]))
"""


@pytest.mark.skipif(not PYTHON.exists(), reason="no bot environment: run scripts/setup.sh")
def test_rasa_reads_a_token_beginning_with_a_dash_as_the_token() -> None:
    tokens = ["-Yw3kPq_8sN2", "--enable-api", "plain_Token-1"]
    result = subprocess.run([str(PYTHON), "-c", PARSE, json.dumps(tokens)], capture_output=True, text=True,
                            timeout=120, cwd=ROOT / "bot")
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [[t, 5005, True] for t in tokens]
