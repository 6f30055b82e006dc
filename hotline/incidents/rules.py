"""config/incidents.yml and config/watch_words.yml, checked when the service starts."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
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
    # Each area's outline as [latitude, longitude] corners, for a WeChat location. WeChat sends GCJ-02
    # coordinates (China's map datum, a few hundred metres off GPS's WGS-84): draw outlines on a GCJ-02
    # map (Tencent, AMap) or a point near a border lands in the neighbouring area.
    boundaries: dict[str, list[tuple[float, float]]] = {}
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

    def area_of_point(self, latitude: float | None, longitude: float | None) -> str | None:
        """The area whose outline holds a point (a resident's WeChat location)."""
        if latitude is None or longitude is None:
            return None
        for area, corners in self.spec.boundaries.items():
            if _inside(latitude, longitude, corners):
                return area
        return None

    def locate(self, address: str = "", latitude: float | None = None, longitude: float | None = None) -> str | None:
        """The words a resident gave first (they name the place of the problem), then where they are."""
        return (self.area_of_address(address) if address else None) or self.area_of_point(latitude, longitude)


def _inside(y: float, x: float, corners: list[tuple[float, float]]) -> bool:
    """Ray casting: a point is inside when a ray from it crosses the outline an odd number of times."""
    inside = False
    for (y1, x1), (y2, x2) in zip(corners, corners[1:] + corners[:1], strict=True):
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


# A word's end that is a letter or digit must not run on into more letters or digits: "12345" (the city's
# hotline) is a word in "打12345投诉" but only digits inside the phone number 13912345678, an account
# number or a ticket number such as GD20261234-5678. Chinese has no spaces, so a Chinese end needs no edge.
_ALNUM = "0-9A-Za-z"


def _pattern(word: str) -> re.Pattern[str]:
    before = f"(?<![{_ALNUM}])" if re.match(f"[{_ALNUM}]", word) else ""
    after = f"(?![{_ALNUM}])" if re.search(f"[{_ALNUM}]$", word) else ""
    return re.compile(before + re.escape(word) + after, re.IGNORECASE)


def _normalized(text: str) -> str:
    """Full-width digits and letters (１２３４５) as the ASCII ones the words are written in."""
    return unicodedata.normalize("NFKC", text)


@dataclass(frozen=True)
class WatchWords:
    words: tuple[str, ...]
    _patterns: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_patterns", tuple(_pattern(_normalized(w)) for w in self.words))

    def found(self, text: str) -> list[str]:
        """The watch words in a message, each as a word: never digits inside a longer number."""
        text = _normalized(text)
        return [w for w, pattern in zip(self.words, self._patterns, strict=True) if pattern.search(text)]


def load_incident_rules(path: Path, business_types: set[str]) -> IncidentRules:
    try:
        spec = IncidentsFile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"{path}: {problems}") from exc
    for area, corners in spec.boundaries.items():
        if area not in spec.areas:
            raise ValueError(f"{path}: boundaries.{area}: not one of the areas")
        if len(corners) < 3:
            raise ValueError(f"{path}: boundaries.{area}: an outline needs at least three corners")
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
