"""The Chinese name of an API field for error details (config/field_labels.yml), so an agent reads
"填写的内容有误：快捷键", not the field's English name."""
from __future__ import annotations

from functools import cache
from typing import Any

import yaml

from hotline.config import ROOT

LABELS_FILE = ROOT / "config" / "field_labels.yml"


@cache
def _labels() -> tuple[dict[str, str], dict[str, str]]:
    data = yaml.safe_load(LABELS_FILE.read_text(encoding="utf-8")) or {}
    return dict(data.get("fields") or {}), dict(data.get("models") or {})


def label_of(model: str, field: str) -> str:
    """The field's Chinese name; for a nested field (items.0.text) that of its last named part."""
    fields, per_model = _labels()
    if found := per_model.get(f"{model}.{field}"):
        return found
    named = [part for part in field.split(".") if not part.isdigit()]
    return fields.get(field) or (fields.get(named[-1]) if named else None) or field


def labelled(model: type[Any], details: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each detail with a "label" beside its "field"."""
    return [{**d, "label": label_of(model.__name__, str(d.get("field", "")))} for d in details]
