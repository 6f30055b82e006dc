"""The working-day calendar (PRC holidays and make-up working days) from data."""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

log = logging.getLogger(__name__)


class CalendarError(ValueError):
    pass


@dataclass
class WorkingCalendar:
    timezone: ZoneInfo
    day_start: dt.time
    day_end: dt.time
    holidays: set[dt.date] = field(default_factory=set)
    workdays: set[dt.date] = field(default_factory=set)
    years: set[int] = field(default_factory=set)
    provisional_years: set[int] = field(default_factory=set)

    def is_working_day(self, day: dt.date) -> bool:
        if day in self.workdays:
            return True
        if day in self.holidays:
            return False
        return day.weekday() < 5

    def next_working_day(self, day: dt.date) -> dt.date:
        """The first working day strictly after `day`."""
        day += dt.timedelta(days=1)
        while not self.is_working_day(day):
            day += dt.timedelta(days=1)
        return day

    def close_of_business(self, day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, self.day_end, tzinfo=self.timezone).astimezone(dt.UTC)

    def add_working_days(self, start: dt.datetime, days: int) -> dt.datetime:
        """Close of business of the `days`-th working day after the local day of `start`.

        With 0, the close of business of the same day when it is a working day
        and `start` is before closing time, otherwise of the next working day.
        """
        if days < 0:
            raise ValueError("days must not be negative")
        local = start.astimezone(self.timezone)
        day = local.date()
        if days == 0:
            if self.is_working_day(day) and local.time() < self.day_end:
                return self.close_of_business(day)
            return self.close_of_business(self.next_working_day(day))
        for _ in range(days):
            day = self.next_working_day(day)
        return self.close_of_business(day)

    def local_date(self, moment: dt.datetime) -> dt.date:
        return moment.astimezone(self.timezone).date()


def _parse_time(text: str, where: str) -> dt.time:
    try:
        return dt.time.fromisoformat(text)
    except (TypeError, ValueError) as exc:
        raise CalendarError(f"{where}: expected HH:MM, got {text!r}") from exc


def _as_date(value: object, where: str) -> dt.date:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError as exc:
        raise CalendarError(f"{where}: expected a date, got {value!r}") from exc


def load_calendar(path: Path) -> WorkingCalendar:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CalendarError(f"{path}: {exc}") from exc
    hours = data.get("business_hours", {})
    calendar = WorkingCalendar(
        timezone=ZoneInfo(data.get("timezone", "Asia/Shanghai")),
        day_start=_parse_time(hours.get("start", "08:30"), f"{path}: business_hours.start"),
        day_end=_parse_time(hours.get("end", "17:30"), f"{path}: business_hours.end"),
    )
    for year, spec in (data.get("years") or {}).items():
        where = f"{path}: years.{year}"
        calendar.years.add(int(year))
        if spec.get("provisional"):
            calendar.provisional_years.add(int(year))
        for i, item in enumerate(spec.get("holidays") or []):
            first = _as_date(item.get("from"), f"{where}.holidays[{i}].from")
            last = _as_date(item.get("to", first), f"{where}.holidays[{i}].to")
            if last < first:
                raise CalendarError(f"{where}.holidays[{i}]: 'to' is before 'from'")
            day = first
            while day <= last:
                calendar.holidays.add(day)
                day += dt.timedelta(days=1)
        for i, item in enumerate(spec.get("workdays") or []):
            day = _as_date(item, f"{where}.workdays[{i}]")
            if day.weekday() < 5:
                raise CalendarError(f"{where}.workdays[{i}]: {day} is not a weekend day")
            calendar.workdays.add(day)
    return calendar


def warn_about_coverage(calendar: WorkingCalendar, today: dt.date) -> None:
    """Say at start when the calendar will not cover the coming year."""
    for year in (today.year, today.year + 1):
        if year not in calendar.years:
            log.warning("working-day calendar has no entry for %s: Monday to Friday assumed", year)
        elif year in calendar.provisional_years:
            log.warning("working-day calendar for %s is provisional (statutory days only): "
                        "enter the State Council's notice in the calendar file", year)
