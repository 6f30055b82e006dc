"""The bot's data files in bot/knowledge/: business types, FAQ, areas, the responsibility boundary."""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

KNOWLEDGE = Path(__file__).resolve().parent.parent / "knowledge"
BILLING_TOPICS = ("price", "payment", "invoice", "late_fee")


@functools.cache
def _load(name: str) -> Any:
    return yaml.safe_load((KNOWLEDGE / name).read_text(encoding="utf-8"))


def business_type(category: str, text: str) -> str | None:
    """The first business type of the category whose keyword appears in the text."""
    for entry in _load("business_types.yml").get(category, []):
        if any(word in text for word in entry["keywords"]):
            return entry["code"]
    return None


def any_business_keyword(text: str) -> bool:
    """Whether the text names a concrete problem of any category (used to keep a handoff's words)."""
    return any(business_type(c, text) for c in ("repair", "complaint"))


def is_urgent(text: str) -> bool:
    return any(word in text for word in _load("business_types.yml")["urgent_keywords"])


def faq_topic(text: str, keys: tuple[str, ...] | None = None) -> dict[str, Any] | None:
    """The first FAQ topic (optionally among `keys`) with a keyword in the text."""
    for topic in _load("faq.yml")["topics"]:
        if keys is not None and topic["key"] not in keys:
            continue
        if any(word in text for word in topic["keywords"]):
            return topic
    return None


def faq_by_key(key: str) -> dict[str, Any] | None:
    return next((t for t in _load("faq.yml")["topics"] if t["key"] == key), None)


def boundary() -> dict[str, Any]:
    return _load("boundary.yml")


def leak_side(text: str) -> str | None:
    """'utility' (up to and including the meter), 'owner' (after the meter) or None when unclear."""
    rules = boundary()
    utility = any(w in text for w in rules["utility_side"])
    owner = any(w in text for w in rules["owner_side"])
    if utility and not owner:
        return "utility"
    if owner and not utility:
        return "owner"
    return None
