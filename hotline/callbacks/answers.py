"""Reading a resident's reply to the survey: an answer, an unclear reply, or something else entirely."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import yaml

ANSWERS = ("satisfied", "basically_satisfied", "dissatisfied")
_PUNCTUATION = re.compile(r"[\s。，,.!！~～、…]+")


@dataclass(frozen=True)
class SurveyWords:
    max_chars: int
    digits: dict[str, str]
    words: list[tuple[str, list[str]]]  # (answer, words), in the order they are tried
    unclear: set[str]

    def read(self, text: str) -> str | None:
        """satisfied / basically_satisfied / dissatisfied / unclear, or None for anything else."""
        plain = _PUNCTUATION.sub("", unicodedata.normalize("NFKC", text)).strip()
        if not plain or len(plain) > self.max_chars:
            return None
        if plain in self.digits:
            return self.digits[plain]
        if plain.isdigit() and len(plain) == 1:
            return "unclear"
        for answer, words in self.words:
            if any(word in plain for word in words):
                return answer
        return "unclear" if plain in self.unclear or plain.lower() in self.unclear else None


def load_survey_words(path: Path) -> SurveyWords:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    try:
        digits = {str(k): str(v) for k, v in data["digits"].items()}
        if set(digits.values()) - set(ANSWERS):
            raise ValueError(f"digits: answers must be among {', '.join(ANSWERS)}")
        return SurveyWords(max_chars=int(data["max_chars"]), digits=digits,
                           words=[(answer, [str(w) for w in data[answer]]) for answer in
                                  ("dissatisfied", "basically_satisfied", "satisfied")],
                           unclear={str(w) for w in data["unclear"]})
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: expected max_chars, digits, dissatisfied, basically_satisfied, satisfied "
                         f"and unclear ({exc})") from exc
