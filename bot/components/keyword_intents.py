"""Command-like requests (绑定户号, 解绑) recognised by their words, after the classifier.

A WeChat official account's residents are used to typing keywords the account told them; these
few are matched exactly (components/keyword_intents.yml) instead of being learned, which would
shift the trained routing of everything else.
"""
from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any, Dict, List, Text

import yaml
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message

from components.normalizing_tokenizer import normalize

PATTERNS = Path(__file__).resolve().parent / "keyword_intents.yml"


@functools.lru_cache(maxsize=1)
def _patterns() -> list[tuple[str, re.Pattern[str]]]:
    data = yaml.safe_load(PATTERNS.read_text(encoding="utf-8"))
    return [(intent, re.compile(p)) for intent, patterns in data["intents"].items() for p in patterns]


def keyword_intent(text: str) -> str | None:
    normal = normalize(text)
    return next((intent for intent, pattern in _patterns() if pattern.search(normal)), None)


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=False)
class KeywordIntents(GraphComponent):
    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {}

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> KeywordIntents:
        return cls()

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            text = message.get(TEXT)
            intent = keyword_intent(text) if isinstance(text, str) and not text.startswith("/") else None
            if intent is None:
                continue
            ranking = [r for r in (message.get(INTENT_RANKING_KEY) or []) if r.get("name") != intent]
            message.set(INTENT, {"name": intent, "confidence": 1.0}, add_to_output=True)
            message.set(INTENT_RANKING_KEY, [{"name": intent, "confidence": 1.0}, *ranking], add_to_output=True)
        return messages
