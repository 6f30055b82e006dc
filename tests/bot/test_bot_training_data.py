"""The Rasa project as Rasa users check it: data validation and test stories (NLU: test_bot_nlu.py)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from hotline.config import ROOT

BOT = ROOT / "bot"
RASA = ROOT / ".venv-rasa" / "bin" / "rasa"
MODEL = BOT / "models" / "hotline.tar.gz"

pytestmark = pytest.mark.skipif(not MODEL.exists(), reason="no trained model: run scripts/setup.sh")


def rasa(*args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, RASA_TELEMETRY_ENABLED="false", TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([str(RASA), *args], cwd=BOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_training_data_validates() -> None:
    result = rasa("data", "validate")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "conflict" not in result.stdout.lower().replace("no story structure conflicts", "")


def test_test_stories_pass(tmp_path: Path) -> None:
    result = rasa("test", "core", "--stories", "tests/test_stories.yml", "--model", str(MODEL),
                  "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    failed = (tmp_path / "failed_test_stories.yml").read_text(encoding="utf-8")
    assert "story:" not in failed, failed
