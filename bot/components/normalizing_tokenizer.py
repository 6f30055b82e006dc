"""Jieba on normalised text: traditional characters and known slips read as what residents meant.

Residents write traditional characters and voice-input or IME slips (停谁了, 抱修); Jieba's
dictionary and the n-gram features only know the simplified, correct forms. Every replacement
keeps the length, so token offsets (and the entities found on the original text) stay valid.
"""
from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any, Dict, List, Text

import yaml
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.nlu.tokenizers.jieba_tokenizer import JiebaTokenizer
from rasa.nlu.tokenizers.tokenizer import Token
from rasa.shared.nlu.training_data.message import Message

VARIANTS = Path(__file__).resolve().parent / "variants.yml"
FULL_WIDTH = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)}  # ０-９, Ａ-Ｚ … -> ASCII


@functools.lru_cache(maxsize=1)
def _tables() -> tuple[dict[int, str], re.Pattern[str] | None, dict[str, str]]:
    data = yaml.safe_load(VARIANTS.read_text(encoding="utf-8"))
    chars: dict[int, str] = {}
    for pair in data["traditional"].split():
        if len(pair) == 2 and pair[0] != pair[1]:
            chars[ord(pair[0])] = pair[1]
    phrases = {k: v for k, v in (data.get("phrases") or {}).items() if len(k) == len(v)}
    pattern = re.compile("|".join(sorted(map(re.escape, phrases), key=len, reverse=True))) if phrases else None
    return {**chars, **{k: chr(v) for k, v in FULL_WIDTH.items()}}, pattern, phrases


def normalize(text: str) -> str:
    """The text as the model should read it; always the same length as the input."""
    chars, pattern, phrases = _tables()
    text = text.translate(chars)
    if pattern is not None:
        text = pattern.sub(lambda m: phrases[m.group(0)], text)
    return text


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_TOKENIZER, is_trainable=True)
class NormalizingJiebaTokenizer(JiebaTokenizer):
    """JiebaTokenizer (with the same dictionary option) reading the normalised text."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return JiebaTokenizer.get_default_config()

    def tokenize(self, message: Message, attribute: Text) -> List[Token]:
        text = message.get(attribute)
        if not isinstance(text, str):
            return super().tokenize(message, attribute)
        normal = normalize(text)
        if normal == text:
            return super().tokenize(message, attribute)
        return super().tokenize(Message(data={attribute: normal}), attribute)
