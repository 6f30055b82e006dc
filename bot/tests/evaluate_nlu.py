"""Evaluate the trained model on the evaluation set in one Rasa process (run with .venv-rasa's python from bot/).

    ../.venv-rasa/bin/python tests/evaluate_nlu.py [--model models/hotline.tar.gz] [--sweep] [--json out.json]

Each message of tests/nlu_eval.yml is parsed as the server parses it. Its routing label is the
predicted intent when it is one of the five (ticket_status counts as inquiry), else "other"
(any other intent, or nlu_fallback). Reports accuracy, per-label precision/recall/F1, the
confusion matrix, the parse latency, and the escalation decisions on tests/anger_eval.yml.
--sweep re-scores the raw intent ranking at each fallback threshold, which is how the
threshold in config.yml was chosen (the one with the highest accuracy over all messages).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
BOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BOT))
LABELS = ["repair", "complaint", "inquiry", "billing", "handoff", "other"]
ROUTING = LABELS[:5]
AS_ROUTING = {"ticket_status": "inquiry"}


def load_examples(path: Path) -> list[tuple[str, str]]:
    import yaml
    out = []
    for block in yaml.safe_load(path.read_text(encoding="utf-8"))["nlu"]:
        if "intent" not in block:
            continue
        label = block["intent"] if block["intent"] in ROUTING else "other"
        for line in block["examples"].splitlines():
            line = line.strip()
            if line.startswith("- "):
                out.append((re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", line[2:]), label))
    return out


def routing_label(intent: str | None) -> str:
    intent = AS_ROUTING.get(intent or "", intent)
    return intent if intent in ROUTING else "other"


def label_at(ranking: list[dict[str, Any]], threshold: float, ambiguity: float) -> str:
    """The label the FallbackClassifier would give with these thresholds."""
    ranked = [r for r in ranking if r["name"] != "nlu_fallback"]
    if not ranked or ranked[0]["confidence"] < threshold:
        return "other"
    if len(ranked) > 1 and ranked[0]["confidence"] - ranked[1]["confidence"] < ambiguity:
        return "other"
    return routing_label(ranked[0]["name"])


def scores(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Accuracy (on routing messages and overall), per-label P/R/F1 and the confusion matrix."""
    matrix = {t: {p: 0 for p in LABELS} for t in LABELS}
    for truth, pred in pairs:
        matrix[truth][pred] += 1
    per: dict[str, dict[str, float]] = {}
    for label in LABELS:
        tp = matrix[label][label]
        predicted = sum(matrix[t][label] for t in LABELS)
        actual = sum(matrix[label].values())
        p = tp / predicted if predicted else 0.0
        r = tp / actual if actual else 0.0
        per[label] = {"precision": round(p, 3), "recall": round(r, 3),
                      "f1": round(2 * p * r / (p + r), 3) if p + r else 0.0, "support": actual}
    routed = [(t, p) for t, p in pairs if t in ROUTING]
    return {"accuracy": round(sum(t == p for t, p in routed) / len(routed), 4),
            "accuracy_all": round(sum(t == p for t, p in pairs) / len(pairs), 4),
            "n_routing": len(routed), "n_all": len(pairs), "per_label": per, "confusion": matrix}


async def parse_all(model: str, texts: list[str]) -> tuple[list[dict[str, Any]], list[float]]:
    from rasa.core.agent import Agent
    agent = Agent.load(model)
    await agent.parse_message("你好")  # warm up
    results, times = [], []
    for text in texts:
        began = time.perf_counter()
        results.append(await agent.parse_message(text))
        times.append((time.perf_counter() - began) * 1000)
    return results, times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=str(BOT / "models" / "hotline.tar.gz"))
    parser.add_argument("--eval", default=str(BOT / "tests" / "nlu_eval.yml"))
    parser.add_argument("--anger", default=str(BOT / "tests" / "anger_eval.yml"))
    parser.add_argument("--sweep", action="store_true")
    parser.add_argument("--json", help="write the report here")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    import yaml

    from actions import escalation

    examples = load_examples(Path(args.eval))
    anger = yaml.safe_load(Path(args.anger).read_text(encoding="utf-8"))["messages"]
    texts = [t for t, _ in examples] + [m["text"] for m in anger]
    parsed, times = asyncio.run(parse_all(args.model, texts))
    ev, an = parsed[:len(examples)], parsed[len(examples):]
    pairs = [(label, routing_label(p["intent"]["name"])) for (_, label), p in zip(examples, ev)]
    report: dict[str, Any] = scores(pairs)
    report["errors"] = [{"text": t, "label": label, "predicted": p["intent"]["name"],
                         "confidence": round(p["intent"].get("confidence") or 0, 3)}
                        for (t, label), p in zip(examples, ev) if routing_label(p["intent"]["name"]) != label]
    report["parse_ms"] = {"p50": round(statistics.median(times), 2),
                          "p95": round(sorted(times)[int(len(times) * 0.95)], 2)}
    decided = []
    for message, p in zip(anger, an):
        conf = next((r["confidence"] for r in p.get("intent_ranking", []) if r["name"] == "complaint"), 0.0)
        score = escalation.anger_score(message["text"], conf, message.get("earlier", []))
        decided.append({"text": message["text"], "angry": message["angry"], "score": round(score, 2),
                        "decided": score >= escalation.threshold()})
    report["anger"] = {"n": len(decided), "correct": sum(d["angry"] == d["decided"] for d in decided),
                       "wrong": [d for d in decided if d["angry"] != d["decided"]]}
    if args.sweep:
        sweep = []
        for step in range(0, 33):
            threshold = round(0.1 + step * 0.025, 3)
            for ambiguity in (0.0, 0.02, 0.05, 0.08):
                got = scores([(label, label_at(p["intent_ranking"], threshold, ambiguity))
                              for (_, label), p in zip(examples, ev)])
                sweep.append({"threshold": threshold, "ambiguity": ambiguity, "accuracy": got["accuracy"],
                              "accuracy_all": got["accuracy_all"]})
        # Ties go to the highest threshold: as accurate, and more cautious with what it does not know.
        report["sweep_best"] = sorted(sweep, key=lambda s: (-s["accuracy_all"], -s["accuracy"], -s["threshold"],
                                                            -s["ambiguity"]))[:8]
        report["sweep"] = [s for s in sweep if s["ambiguity"] in (0.0, 0.05)]
    text = json.dumps(report, ensure_ascii=False, indent=1)
    if args.json:
        Path(args.json).write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
