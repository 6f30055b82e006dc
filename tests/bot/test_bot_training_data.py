"""The Rasa project as Rasa users check it: data validation, held-out NLU, test stories."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from hotline.config import ROOT

BOT = ROOT / "bot"
RASA = ROOT / ".venv-rasa" / "bin" / "rasa"
MODEL = BOT / "models" / "hotline.tar.gz"
ROUTING_INTENTS = ("repair", "complaint", "inquiry", "billing", "handoff")

pytestmark = pytest.mark.skipif(not MODEL.exists(), reason="no trained model: run scripts/setup.sh")


def rasa(*args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, RASA_TELEMETRY_ENABLED="false", TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([str(RASA), *args], cwd=BOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_training_data_validates() -> None:
    result = rasa("data", "validate")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "conflict" not in result.stdout.lower().replace("no story structure conflicts", "")


def test_held_out_messages_are_understood(tmp_path: Path) -> None:
    result = rasa("test", "nlu", "--nlu", "tests/nlu_holdout.yml", "--model", str(MODEL), "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "intent_report.json").read_text(encoding="utf-8"))
    scores = {intent: round(report[intent]["f1-score"], 3) for intent in ROUTING_INTENTS}
    assert report["weighted avg"]["f1-score"] >= 0.85, scores
    for intent, f1 in scores.items():
        assert f1 >= 0.75, f"{intent}: f1 {f1} on held-out messages ({scores})"


def test_test_stories_pass(tmp_path: Path) -> None:
    result = rasa("test", "core", "--stories", "tests/test_stories.yml", "--model", str(MODEL),
                  "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    failed = (tmp_path / "failed_test_stories.yml").read_text(encoding="utf-8")
    assert "story:" not in failed, failed
