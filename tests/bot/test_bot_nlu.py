"""How well the bot understands residents: the evaluation set, the anger decisions, the data's hygiene.

bot/tests/nlu_eval.yml is evaluated through one Rasa process (bot/tests/evaluate_nlu.py); the
model is trained with a fixed seed, so the numbers are stable and a drop fails the suite.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from hotline.config import ROOT

BOT = ROOT / "bot"
PYTHON = ROOT / ".venv-rasa" / "bin" / "python"
MODEL = BOT / "models" / "hotline.tar.gz"
ROUTING = ("repair", "complaint", "inquiry", "billing", "handoff")
# The bar: the target is accuracy >= 0.95 and F1 >= 0.90 per routing label.
MIN_ACCURACY = 0.95
MIN_F1 = 0.90
MAX_PARSE_P50_MS = 20.0


def _examples(path: Path) -> list[tuple[str, str]]:
    out = []
    for block in yaml.safe_load(path.read_text(encoding="utf-8"))["nlu"]:
        if "intent" in block:
            for line in block["examples"].splitlines():
                if line.strip().startswith("- "):
                    out.append((block["intent"], re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", line.strip()[2:])))
    return out


def _norm(text: str) -> str:
    return re.sub(r"[\s，。！？,.!?、~～…]", "", text)


def _grams(text: str) -> set[str]:
    text = _norm(text)
    return {text[i:i + 3] for i in range(max(1, len(text) - 2))}


TRAINING = [e for path in sorted((BOT / "data").glob("nlu*.yml")) for e in _examples(path)]
EVALUATION = _examples(BOT / "tests" / "nlu_eval.yml")


def test_the_evaluation_set_is_large_enough_and_kept_out_of_training() -> None:
    assert sum(1 for intent, _ in EVALUATION if intent in ROUTING) >= 400
    training = {_norm(t): intent for intent, t in TRAINING}
    grams = [(t, _grams(t)) for _, t in TRAINING]
    near = []
    for _, text in EVALUATION:
        assert _norm(text) not in training, f"evaluation message {text!r} is in the training data"
        if len(_norm(text)) >= 6:
            g = _grams(text)
            near += [(text, t) for t, h in grams if len(g & h) / len(g | h) >= 0.6]
    assert not near, f"near duplicates of training examples in the evaluation set: {near[:10]}"


def test_no_near_duplicates_pad_a_training_class() -> None:
    seen: dict[str, str] = {}
    for intent, text in TRAINING:
        key = _norm(text)
        assert key not in seen, f"{text!r} twice in the training data ({seen[key]}, {intent})"
        seen[key] = intent
    by_intent: dict[str, list[set[str]]] = {}
    padded = []
    for intent, text in TRAINING:
        if len(_norm(text)) < 8:
            continue
        g = _grams(text)
        padded += [text for h in by_intent.get(intent, []) if len(g & h) / len(g | h) >= 0.8]
        by_intent.setdefault(intent, []).append(g)
    assert not padded, f"near-duplicate training examples: {padded[:10]}"


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not MODEL.exists():
        pytest.skip("no trained model: run scripts/setup.sh")
    out = tmp_path_factory.mktemp("nlu-eval") / "report.json"
    env = dict(os.environ, RASA_TELEMETRY_ENABLED="false", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([str(PYTHON), "tests/evaluate_nlu.py", "--json", str(out)], cwd=BOT, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(out.read_text(encoding="utf-8"))


def test_residents_messages_are_routed_right(report: dict[str, Any]) -> None:
    per = report["per_label"]
    summary = {label: per[label]["f1"] for label in ROUTING}
    errors = [f"{e['text']} ({e['label']} -> {e['predicted']})" for e in report["errors"]][:30]
    assert report["accuracy"] >= MIN_ACCURACY, (report["accuracy"], summary, errors)
    for label in ROUTING:
        assert per[label]["f1"] >= MIN_F1, (label, summary, errors)


def test_anger_is_decided_right_on_messages_not_in_training(report: dict[str, Any]) -> None:
    anger = report["anger"]
    assert anger["n"] >= 40 and anger["correct"] / anger["n"] >= 0.95, anger["wrong"]


def test_parsing_is_fast_enough(report: dict[str, Any]) -> None:
    assert report["parse_ms"]["p50"] <= MAX_PARSE_P50_MS, report["parse_ms"]
