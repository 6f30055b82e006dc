"""Routing and time limits from config/routing.yml.

A ticket's department, supervisor and due times are decided here when it is
created and again when it is re-routed or reopened; nothing else computes them.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hotline.tickets.calendar import WorkingCalendar
from models.ticket import CATEGORIES, PRIORITIES


class RoutingError(ValueError):
    pass


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Limit(_Strict):
    hours: float | None = Field(default=None, gt=0)
    working_days: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _one_unit(self) -> Limit:
        if (self.hours is None) == (self.working_days is None):
            raise ValueError("give exactly one of hours or working_days")
        return self

    def due(self, start: dt.datetime, calendar: WorkingCalendar) -> dt.datetime:
        if self.hours is not None:
            return start + dt.timedelta(hours=self.hours)
        assert self.working_days is not None
        return calendar.add_working_days(start, self.working_days)

    def describe(self) -> str:
        """The limit as a resident hears it, e.g. 30分钟 / 24小时 / 5个工作日."""
        if self.hours is not None:
            minutes = round(self.hours * 60)
            return f"{minutes}分钟" if minutes < 60 else f"{self.hours:g}小时"
        return "当日" if self.working_days == 0 else f"{self.working_days}个工作日"


class Limits(_Strict):
    response: Limit
    resolution: Limit
    on_site: Limit | None = None  # repairs: the crew on site (到场)


class DepartmentSpec(_Strict):
    name: str
    supervisor: str | None = None


class CategorySpec(_Strict):
    name: str
    default_business_type: str


class BusinessTypeSpec(_Strict):
    name: str
    category: Literal["repair", "complaint", "inquiry", "billing"]
    department: str
    priority: Literal["normal", "urgent"] = "normal"
    limits: dict[Literal["normal", "urgent"], Limits]

    @model_validator(mode="after")
    def _has_normal(self) -> BusinessTypeSpec:
        if "normal" not in self.limits:
            raise ValueError("limits must include 'normal'")
        return self


class EscalationStep(_Strict):
    name: str
    at: Literal["response_due", "resolution_due", "on_site_due"]
    fraction: float = Field(default=1.0, gt=0, le=1)
    after_hours: float = Field(default=0, ge=0)
    only_status: list[str] | None = None
    notify: list[Literal["supervisor", "assignee", "manager"]]
    label: str


class EscalationSpec(_Strict):
    manager_department: str
    steps: list[EscalationStep]


class RoutingFile(_Strict):
    departments: dict[str, DepartmentSpec]
    intake_department: str  # where returned work (退单) goes to be routed again
    categories: dict[Literal["repair", "complaint", "inquiry", "billing"], CategorySpec]
    business_types: dict[str, BusinessTypeSpec]
    callback: Limit
    escalation: EscalationSpec

    @model_validator(mode="after")
    def _references(self) -> RoutingFile:
        for code, bt in self.business_types.items():
            if bt.department not in self.departments:
                raise ValueError(f"business type {code}: unknown department {bt.department!r}")
        for code, cat in self.categories.items():
            default = self.business_types.get(cat.default_business_type)
            if default is None or default.category != code:
                raise ValueError(f"category {code}: default_business_type must be one of its business types")
        missing = set(CATEGORIES) - set(self.categories)
        if missing:
            raise ValueError(f"categories missing: {sorted(missing)}")
        if self.intake_department not in self.departments:
            raise ValueError("intake_department: unknown department")
        if self.escalation.manager_department not in self.departments:
            raise ValueError("escalation.manager_department: unknown department")
        return self


@dataclass(frozen=True)
class Route:
    category: str
    business_type: str
    priority: str
    department: str
    response_due_at: dt.datetime
    resolution_due_at: dt.datetime
    response_limit: Limit
    resolution_limit: Limit
    on_site_due_at: dt.datetime | None = None


class Router:
    def __init__(self, spec: RoutingFile, calendar: WorkingCalendar, callback_expire_working_days: int = 3) -> None:
        self.spec = spec
        self.calendar = calendar
        # A callback nobody answered by then counts as unreachable ([callback] expire_working_days).
        self.callback_expire_working_days = callback_expire_working_days

    def business_type(self, code: str) -> BusinessTypeSpec:
        try:
            return self.spec.business_types[code]
        except KeyError:
            raise RoutingError(f"unknown business_type {code!r}") from None

    def route(self, category: str, business_type: str | None, priority: str | None,
              start: dt.datetime) -> Route:
        """Decide department and due times; a priority of None takes the type's default."""
        if category not in self.spec.categories:
            raise RoutingError(f"unknown category {category!r}; expected one of {', '.join(CATEGORIES)}")
        code = business_type or self.spec.categories[category].default_business_type
        bt = self.business_type(code)
        if bt.category != category:
            raise RoutingError(f"business_type {code!r} belongs to category {bt.category!r}, not {category!r}")
        prio = priority or bt.priority
        if prio not in PRIORITIES:
            raise RoutingError(f"unknown priority {prio!r}; expected normal or urgent")
        limits = bt.limits.get(prio) or bt.limits["normal"]  # type: ignore[call-overload]
        return Route(
            category=category, business_type=code, priority=prio, department=bt.department,
            response_due_at=limits.response.due(start, self.calendar),
            resolution_due_at=limits.resolution.due(start, self.calendar),
            response_limit=limits.response, resolution_limit=limits.resolution,
            on_site_due_at=limits.on_site.due(start, self.calendar) if limits.on_site else None,
        )

    def callback_due(self, resolved_at: dt.datetime) -> dt.datetime:
        return self.spec.callback.due(resolved_at, self.calendar)

    def escalation_times(self, created_at: dt.datetime, response_due_at: dt.datetime,
                         resolution_due_at: dt.datetime, on_site_due_at: dt.datetime | None = None,
                         ) -> list[tuple[dt.datetime, EscalationStep]]:
        """Every step's moment for one ticket, earliest first; a ticket's escalation
        level is how many of these have been dealt with. Steps about arrival on site
        exist only for tickets with an on-site limit."""
        times = []
        for step in self.spec.escalation.steps:
            if step.at == "on_site_due":
                if on_site_due_at is None:
                    continue
                due = on_site_due_at
            else:
                due = response_due_at if step.at == "response_due" else resolution_due_at
            moment = created_at + (due - created_at) * step.fraction + dt.timedelta(hours=step.after_hours)
            times.append((moment, step))
        times.sort(key=lambda pair: pair[0])
        return times


def load_routing(path: Path, calendar: WorkingCalendar) -> Router:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        spec = RoutingFile.model_validate(raw)
    except OSError as exc:
        raise RoutingError(f"{path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise RoutingError(f"{path}: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise RoutingError(f"{path}: {problems}") from exc
    return Router(spec, calendar)
