"""config/gov12345.yml: the platform's field names, paths and words, and 诉求类型 → business type.

Checked against the routing file at start, so a typo stops the service with
the line at fault instead of leaving orders unrouted.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hotline.tickets.routing import Router

INBOUND_FIELDS = ("order_no", "type", "title", "content", "caller", "phone", "address", "accepted_at",
                  "sign_due_at", "due_at", "urgency", "attachments")
OUTBOUND_KINDS = ("sign", "progress", "reply", "extension", "return")
ANSWERS = ("satisfied", "basically_satisfied", "dissatisfied")


class MappingError(ValueError):
    pass


@dataclass
class Mapping:
    inbound: dict[str, str] = field(default_factory=dict)  # our field name → the platform's
    outbound: dict[str, str] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)  # our outbound kind → the platform's path
    urgency: dict[str, str] = field(default_factory=lambda: {"normal": "normal", "urgent": "urgent"})
    satisfaction: dict[str, str] = field(default_factory=lambda: {
        "满意": "satisfied", "基本满意": "basically_satisfied", "不满意": "dissatisfied"})
    types: dict[str, str] = field(default_factory=dict)  # 诉求类型 → business type
    unrouted: str = "inquiry_general"

    def wire(self, ours: str) -> str:
        return self.inbound.get(ours, ours)

    def rename_inbound(self, data: dict[str, Any]) -> dict[str, Any]:
        """A pushed order with our field names (fields we do not know are kept as they are)."""
        back = {self.wire(name): name for name in INBOUND_FIELDS}
        return {back.get(key, key): value for key, value in data.items()}

    def rename_outbound(self, data: dict[str, Any]) -> dict[str, Any]:
        return {self.outbound.get(key, key): value for key, value in data.items()}

    def path(self, kind: str) -> str:
        return self.paths.get(kind, kind)


def _strings(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise MappingError(f"{where}: expected a mapping of names to names")
    return dict(value)


def load_mapping(path: Path, router: Router) -> Mapping:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise MappingError(f"{path}: {exc}") from exc
    fields = data.get("fields") or {}
    mapping = Mapping(inbound=_strings(fields.get("inbound"), f"{path}: fields.inbound"),
                      outbound=_strings(fields.get("outbound"), f"{path}: fields.outbound"),
                      paths=_strings(data.get("paths"), f"{path}: paths"),
                      types={str(k): v for k, v in _strings(data.get("types"), f"{path}: types").items()},
                      unrouted=str(data.get("unrouted") or "inquiry_general"))
    if data.get("urgency"):
        mapping.urgency = _strings(data["urgency"], f"{path}: urgency")
    if data.get("satisfaction"):
        mapping.satisfaction = _strings(data["satisfaction"], f"{path}: satisfaction")
    for name in mapping.inbound:
        if name not in INBOUND_FIELDS:
            raise MappingError(f"{path}: fields.inbound: unknown field {name!r}")
    for kind in mapping.paths:
        if kind not in OUTBOUND_KINDS:
            raise MappingError(f"{path}: paths: unknown kind {kind!r}; expected {', '.join(OUTBOUND_KINDS)}")
    for word, ours in mapping.urgency.items():
        if ours not in ("normal", "urgent"):
            raise MappingError(f"{path}: urgency {word!r}: expected normal or urgent, got {ours!r}")
    for word, answer in mapping.satisfaction.items():
        if answer not in ANSWERS:
            raise MappingError(f"{path}: satisfaction {word!r}: expected one of {', '.join(ANSWERS)}")
    known = router.spec.business_types
    for kind, code in [*mapping.types.items(), ("unrouted", mapping.unrouted)]:
        if code not in known:
            raise MappingError(f"{path}: {kind!r} → {code!r} is not a business type of the routing file")
    intake = router.spec.intake_department
    if known[mapping.unrouted].department != intake:
        raise MappingError(f"{path}: unrouted: {mapping.unrouted!r} must belong to the intake department {intake!r}")
    return mapping
