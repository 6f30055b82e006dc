"""config/incidents.yml and config/watch_words.yml, checked when the service starts."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Rule(_Strict):
    title: str
    business_types: list[str] = Field(min_length=1)
    count: int = Field(ge=2)
    minutes: int = Field(ge=1)


class IncidentsFile(_Strict):
    rules: dict[str, Rule]
    areas: dict[str, list[str]]
    dispatch_departments: list[str] = []


@dataclass(frozen=True)
class IncidentRules:
    spec: IncidentsFile

    def rule_for(self, business_type: str) -> tuple[str, Rule] | None:
        for name, rule in self.spec.rules.items():
            if business_type in rule.business_types:
                return name, rule
        return None

    def area_of_address(self, address: str) -> str | None:
        """The area whose words an address holds (the longest word wins: 中山东路 over 城东)."""
        best: tuple[int, str] | None = None
        for area, words in self.spec.areas.items():
            for word in words:
                if word and word in address and (best is None or len(word) > best[0]):
                    best = (len(word), area)
        return best[1] if best else None


@dataclass(frozen=True)
class WatchWords:
    words: tuple[str, ...]

    def found(self, text: str) -> list[str]:
        return [w for w in self.words if w in text]


def load_incident_rules(path: Path, business_types: set[str]) -> IncidentRules:
    try:
        spec = IncidentsFile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"{path}: {problems}") from exc
    for name, rule in spec.rules.items():
        unknown = set(rule.business_types) - business_types
        if unknown:
            raise ValueError(f"{path}: rules.{name}: unknown business types {', '.join(sorted(unknown))}")
    return IncidentRules(spec)


def load_watch_words(path: Path) -> WatchWords:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return WatchWords(tuple(str(w) for w in [*data.get("words", []), *data.get("distress", [])]))
    except (OSError, yaml.YAMLError, AttributeError) as exc:
        raise ValueError(f"{path}: {exc}") from exc
