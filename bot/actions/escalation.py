"""Anger and escalation risk, judged from the message as a whole (knowledge/escalation.yml).

A word list alone missed 什么服务态度 and threats to call 12345; the score also takes the
classifier's confidence that the message is a complaint, intensity markers, threats to go to
12345 or the media, and how often the resident has complained in this conversation.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

FILE = Path(__file__).resolve().parent.parent / "knowledge" / "escalation.yml"


@functools.lru_cache(maxsize=1)
def _rules() -> dict[str, Any]:
    return yaml.safe_load(FILE.read_text(encoding="utf-8"))


def threshold() -> float:
    return float(_rules()["threshold"])


def has_threat(text: str) -> bool:
    return any(str(word) in text for word in _rules()["threats"])


def anger_score(text: str, complaint_confidence: float, earlier: list[str] | None = None) -> float:
    """The escalation score of `text`; `earlier` are the resident's earlier complaint messages."""
    rules = _rules()
    score = rules["complaint_weight"] * max(0.0, min(1.0, complaint_confidence))
    found: list[float] = []
    for group in rules["markers"].values():
        found += [float(group["weight"]) for word in group["words"] if word in text]
    score += sum(sorted(found, reverse=True)[:rules["max_markers"]])
    if has_threat(text):
        score += rules["threat_weight"]
    earlier = [e for e in (earlier or []) if e.strip()]
    score += rules["repeat_weight"] * min(2, len(earlier))
    if text.strip() and any(text.strip() == e.strip() for e in earlier):
        score += rules["repeat_weight"]  # the same words again
    return score


def is_escalation(text: str, complaint_confidence: float, earlier: list[str] | None = None) -> bool:
    return anger_score(text, complaint_confidence, earlier) >= threshold()
