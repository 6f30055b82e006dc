"""The bot's data files in bot/knowledge/: business-type keywords and the FAQ."""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

KNOWLEDGE = Path(__file__).resolve().parent.parent / "knowledge"


@functools.lru_cache(maxsize=None)
def _load(name: str) -> Any:
    return yaml.safe_load((KNOWLEDGE / name).read_text(encoding="utf-8"))


def business_type(category: str, text: str) -> str | None:
    """The first business type of the category whose keyword appears in the text."""
    for entry in _load("business_types.yml").get(category, []):
        if any(word in text for word in entry["keywords"]):
            return entry["code"]
    return None


def is_urgent(text: str) -> bool:
    return any(word in text for word in _load("business_types.yml")["urgent_keywords"])


def is_angry(text: str) -> bool:
    return any(word in text for word in _load("business_types.yml")["anger_keywords"])


def faq_topic(text: str) -> dict[str, Any] | None:
    for topic in _load("faq.yml")["topics"]:
        if any(word in text for word in topic["keywords"]):
            return topic
    return None
