"""Voice menus as data: load and check ivr_flows/*.yml.

A flow is a set of named nodes; each node does one thing (play, menu, input,
action, when, record, transfer, hangup) and names the node that comes next.
Everything is checked at start: unknown keys, missing targets, prompts that
are not defined, actions and conditions the engine does not know. A bad file
is refused with its name and the line of the offending entry.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hotline.ivr.vocabulary import ACTIONS, CALL_OUTCOMES, CONDITIONS

DIGITS = set("0123456789*#")


class FlowError(Exception):
    """A flow file that cannot be run; the message names the file and line."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Menu(_Strict):
    prompt: str
    options: dict[str, str]
    timeout: float = Field(default=5, gt=0, le=60)
    retries: int = Field(default=3, ge=1, le=10)
    invalid_prompt: str | None = None
    timeout_prompt: str | None = None
    exhausted: str

    @field_validator("options", mode="before")
    @classmethod
    def _keys_are_digits(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for key in value:
                if str(key) not in DIGITS:
                    raise ValueError(f"option {key!r} is not a key on a telephone (0-9, * or #)")
            return {str(k): v for k, v in value.items()}
        return value


class Input(_Strict):
    prompt: str
    save_as: str
    min_digits: int = Field(default=1, ge=0, le=32)  # 0: the terminator alone is an answer ("don't know")
    max_digits: int = Field(default=10, ge=1, le=32)
    terminator: Literal["#", "*", ""] = "#"
    timeout: float = Field(default=8, gt=0, le=60)
    retries: int = Field(default=3, ge=1, le=10)
    invalid_prompt: str | None = None
    exhausted: str

    @model_validator(mode="after")
    def _range(self) -> Input:
        if self.min_digits > self.max_digits:
            raise ValueError("min_digits is larger than max_digits")
        return self


class Record(_Strict):
    prompt: str
    max_seconds: int = Field(default=60, ge=1, le=300)
    save_as: str = "recording"


class Branch(_Strict):
    if_: str = Field(alias="if")
    then: str

    @field_validator("if_")
    @classmethod
    def _known(cls, value: str) -> str:
        name = value.removeprefix("not ")
        if name not in CONDITIONS:
            raise ValueError(f"unknown condition {value!r}; known: {', '.join(CONDITIONS)} (optionally 'not …')")
        return value


class Node(_Strict):
    play: list[str] | None = None
    menu: Menu | None = None
    input: Input | None = None
    action: str | None = None
    args: dict[str, str] = Field(default_factory=dict)
    outcomes: dict[str, str] = Field(default_factory=dict)
    when: list[Branch] | None = None
    else_: str | None = Field(default=None, alias="else")
    record: Record | None = None
    transfer: str | None = None  # a SIP URI, or "" for the configured agent queue
    on_failure: str | None = None
    hangup: list[str] | None = None  # prompts said before hanging up
    path: str | None = None  # the label written to the call's menu path
    outcome: str | None = None  # the call outcome this node settles (self_served, ticket, …)

    @field_validator("outcome")
    @classmethod
    def _known_outcome(cls, value: str | None) -> str | None:
        if value is not None and value not in CALL_OUTCOMES:
            raise ValueError(f"unknown outcome {value!r}; known: {', '.join(CALL_OUTCOMES)}")
        return value
    next: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Node:
        kinds = [k for k in ("menu", "input", "action", "when", "record", "transfer", "hangup")
                 if getattr(self, k) is not None]
        if len(kinds) > 1:
            raise ValueError(f"a node does one thing; this one has {' and '.join(kinds)}")
        if not kinds and self.play is None:
            raise ValueError("a node needs one of play, menu, input, action, when, record, transfer, hangup")
        if self.action is not None:
            if self.action not in ACTIONS:
                raise ValueError(f"unknown action {self.action!r}; known: {', '.join(ACTIONS)}")
            unknown = set(self.outcomes) - set(ACTIONS[self.action])
            if unknown:
                raise ValueError(f"action {self.action} has no outcome {', '.join(sorted(unknown))}; "
                                 f"it reports {', '.join(ACTIONS[self.action])}")
        if self.when is not None and self.else_ is None:
            raise ValueError("when needs an else")
        if self.transfer is not None and self.on_failure is None:
            raise ValueError("transfer needs on_failure (where a caller goes when no one answers)")
        needs_next = kinds in ([], ["input"], ["record"]) or (self.action is not None and not self.outcomes)
        if needs_next and self.next is None:
            raise ValueError("this node needs next")
        return self

    def targets(self) -> list[tuple[str, str]]:
        """(where, node name) for every node this one can lead to."""
        out: list[tuple[str, str]] = []
        if self.next:
            out.append(("next", self.next))
        if self.menu:
            out += [(f"menu.options.{k}", v) for k, v in self.menu.options.items()]
            out.append(("menu.exhausted", self.menu.exhausted))
        if self.input:
            out.append(("input.exhausted", self.input.exhausted))
        out += [(f"outcomes.{k}", v) for k, v in self.outcomes.items()]
        out += [(f"when.{i}.then", b.then) for i, b in enumerate(self.when or [])]
        if self.else_:
            out.append(("else", self.else_))
        if self.on_failure:
            out.append(("on_failure", self.on_failure))
        return out

    def prompts(self) -> list[tuple[str, str]]:
        out = [("play", p) for p in self.play or []] + [("hangup", p) for p in self.hangup or []]
        for kind in ("menu", "input", "record"):
            part = getattr(self, kind)
            if part is not None:
                out += [(f"{kind}.{f}", getattr(part, f)) for f in ("prompt", "invalid_prompt", "timeout_prompt")
                        if getattr(part, f, None)]
        return out


class Hours(_Strict):
    """Agents on duty: weekly hours in the utility's time zone; the working-day calendar decides holidays."""
    open: dt.time
    close: dt.time
    working_days_only: bool = True


class Flow(_Strict):
    name: str
    start: str
    agent_hours: Hours
    prompts: dict[str, str]
    nodes: dict[str, Node]

    @model_validator(mode="after")
    def _references(self) -> Flow:
        problems: list[str] = []
        if self.start not in self.nodes:
            problems.append(f"start: no node {self.start!r}")
        for name, node in self.nodes.items():
            problems += [f"nodes.{name}.{where}: no node {target!r}" for where, target in node.targets()
                         if target not in self.nodes]
            problems += [f"nodes.{name}.{where}: no prompt {prompt!r}" for where, prompt in node.prompts()
                         if prompt not in self.prompts]
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _line_of(root: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """The line (1-based) of the YAML entry a validation error points at, or of its nearest parent."""
    node, line = root, (root.start_mark.line + 1 if root is not None else None)
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            found = next((v for k, v in node.value if k.value == str(key) or k.value == str(key).rstrip("_")), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            found = node.value[key]
        else:
            found = None
        if found is None:
            break
        node, line = found, found.start_mark.line + 1
    return line


def _line_of_path(root: yaml.Node | None, dotted: str) -> int | None:
    return _line_of(root, tuple(int(p) if p.isdigit() else p for p in dotted.split(".")))


def load_flow(path: Path) -> Flow:
    try:
        text = path.read_text(encoding="utf-8")
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise FlowError(f"{path}: cannot read: {exc}") from exc
    except yaml.YAMLError as exc:
        raise FlowError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return Flow.model_validate(data)
    except ValidationError as exc:
        messages = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            line = _line_of(root, loc)
            if not loc and ("no node" in msg or "no prompt" in msg):  # cross-reference errors: one per line
                for part in msg.split("; "):
                    where = part.split(":", 1)[0]
                    messages.append(f"{path}:{_line_of_path(root, where)}: {part}")
                continue
            where = ".".join(str(p) for p in loc) or "(top)"
            messages.append(f"{path}:{line}: {where}: {msg}")
        raise FlowError("invalid IVR flow:\n  " + "\n  ".join(messages)) from None


def load_flows(folder: Path) -> dict[str, Flow]:
    """Every flow in the folder, by name; the service refuses to start on the first bad one."""
    flows: dict[str, Flow] = {}
    for path in sorted(folder.glob("*.yml")):
        flow = load_flow(path)
        if flow.name in flows:
            raise FlowError(f"{path}: a flow named {flow.name!r} is defined twice")
        flows[flow.name] = flow
    if not flows:
        raise FlowError(f"{folder}: no *.yml flow files")
    return flows
