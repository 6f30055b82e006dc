"""The catalogue of words residents hear or read (config/messages.yml), checked at start.

Code asks for a text by key with the values it provides; the catalogue file
decides the words. `PLACES` is the contract between the two: each key and the
placeholders the code fills in. A missing or unknown key, or a placeholder the
code does not provide, stops the start with the file, key and line, so a typo
in an edited catalogue never reaches a resident as a crash or a literal brace.
"""
from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import yaml

PLACES: dict[str, frozenset[str]] = {
    "conversation.handoff": frozenset(),
    "conversation.bot_unavailable": frozenset(),
    "conversation.bot_busy": frozenset(),
    "conversation.cut_for_bot": frozenset({"limit"}),
    "conversation.agent_joined": frozenset({"name"}),
    "conversation.handed_back": frozenset(),
    "conversation.rating": frozenset(),
    "conversation.rated": frozenset(),
    "ticket.assign": frozenset({"ticket", "due"}),
    "ticket.start": frozenset({"ticket", "due"}),
    "ticket.resolve": frozenset({"ticket", "due"}),
    "ticket.reopen": frozenset({"ticket", "due"}),
    "ticket.approve_extension": frozenset({"ticket", "due"}),
    "callback.survey": frozenset({"ticket", "resolution"}),
    "callback.ask_again": frozenset(),
    "callback.thanks": frozenset({"ticket"}),
    "callback.unclear_recorded": frozenset(),
    "callback.already": frozenset({"ticket"}),
    "callback.page_title": frozenset(),
    "callback.page_question": frozenset({"ticket"}),
    "callback.page_done": frozenset(),
    "callback.page_invalid": frozenset(),
    "ticket.resolve_with_incident": frozenset({"ticket", "due"}),
    "incident.known": frozenset({"title", "text", "restore", "ticket"}),
    "incident.outage_published": frozenset({"areas", "title", "detail", "starts", "ends"}),
    "incident.outage_extended": frozenset({"areas", "title", "detail", "starts", "ends"}),
    "incident.outage_ended": frozenset({"areas", "title", "detail", "starts", "ends"}),
    "webchat.bad_format": frozenset(),
    "webchat.too_long": frozenset({"limit"}),
    "webchat.typing": frozenset(),
    "webchat.too_fast": frozenset(),
    "webchat.too_many_connections": frozenset(),
    "webchat.greeting": frozenset(),
    "webchat.rating_choices": frozenset(),
    "webchat.queue_position": frozenset({"ahead"}),
    "webchat.tickets": frozenset({"tickets"}),
    "residents.too_many_lookups": frozenset(),
    "residents.too_many_proofs": frozenset(),
    "residents.not_proven": frozenset(),
    "ivr.outage": frozenset({"title", "starts", "ends"}),
    "wechat.welcome": frozenset({"privacy_url"}),
    "wechat.voice_not_recognised": frozenset(),
    "wechat.image_received": frozenset(),
}


class CatalogueError(ValueError):
    pass


class Messages:
    """The checked catalogue; `messages("ticket.assign", ticket="GD…")` gives the text."""

    def __init__(self, texts: dict[str, str]) -> None:
        self.texts = texts

    def __call__(self, key: str, **values: Any) -> str:
        return self.texts[key].format(**values)

    def has(self, key: str) -> bool:
        return key in self.texts


def _flatten(node: yaml.MappingNode, prefix: str, out: dict[str, tuple[str, int]], path: Path) -> None:
    for key_node, value_node in node.value:
        key = f"{prefix}{key_node.value}"
        line = key_node.start_mark.line + 1
        if isinstance(value_node, yaml.MappingNode):
            _flatten(value_node, f"{key}.", out, path)
        elif isinstance(value_node, yaml.ScalarNode) and isinstance(value_node.value, str):
            out[key] = (value_node.value, line)
        else:
            raise CatalogueError(f"{path}:{line}: {key} must be a text")


def _placeholders(text: str) -> set[str]:
    return {field.split(".")[0].split("[")[0] for _, field, _, _ in string.Formatter().parse(text)
            if field is not None}


def load_messages(path: Path, places: dict[str, frozenset[str]] | None = None) -> Messages:
    places = PLACES if places is None else places
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogueError(f"{path}: {exc}") from exc
    if not isinstance(root, yaml.MappingNode):
        raise CatalogueError(f"{path}: expected sections of key: text")
    found: dict[str, tuple[str, int]] = {}
    _flatten(root, "", found, path)
    problems = []
    for key, (text, line) in found.items():
        if key not in places:
            problems.append(f"{path}:{line}: unknown key {key}")
            continue
        try:
            used = _placeholders(text)
        except ValueError as exc:
            problems.append(f"{path}:{line}: {key}: {exc}")
            continue
        if extra := used - places[key]:
            allowed = ", ".join(sorted(places[key])) or "none"
            problems.append(f"{path}:{line}: {key} uses {{{'}, {'.join(sorted(extra))}}}; allowed: {allowed}")
    problems += [f"{path}: missing key {key}" for key in places if key not in found]
    if problems:
        raise CatalogueError("the message catalogue has mistakes:\n  " + "\n  ".join(problems))
    return Messages({key: text for key, (text, _) in found.items()})
