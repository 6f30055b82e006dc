"""Due times follow the routing file and the PRC working-day calendar."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from hotline.config import ROOT
from hotline.tickets.calendar import CalendarError, load_calendar
from hotline.tickets.routing import RoutingError, load_routing
from tests.conftest import local


@pytest.fixture(scope="module")
def router():
    calendar = load_calendar(ROOT / "config/calendar-cn.yml")
    return load_routing(ROOT / "config/routing.yml", calendar)


def test_calendar_knows_holidays_and_make_up_days(router) -> None:
    cal = router.calendar
    assert not cal.is_working_day(dt.date(2026, 10, 5))   # a Monday inside National Day
    assert cal.is_working_day(dt.date(2026, 10, 10))      # a Saturday make-up working day (调休)
    assert cal.is_working_day(dt.date(2026, 2, 14))       # Saturday before the Spring Festival
    assert not cal.is_working_day(dt.date(2026, 2, 23))   # the Monday that ends the Spring Festival
    assert not cal.is_working_day(dt.date(2026, 11, 28))  # an ordinary Saturday
    assert cal.is_working_day(dt.date(2026, 11, 27))      # an ordinary Friday


def test_inquiry_due_skips_the_national_day_holiday(router) -> None:
    # Created on Wednesday 30 September: 1-7 October are holidays, so the first
    # working day after it is Thursday 8 October, the second Friday 9 October.
    route = router.route("inquiry", None, None, local(2026, 9, 30, 10, 0))
    assert route.department == "customer_service"
    assert route.response_due_at == local(2026, 10, 8, 17, 30)
    assert route.resolution_due_at == local(2026, 10, 9, 17, 30)


def test_working_days_count_a_make_up_saturday(router) -> None:
    # Friday 13 February 2026: the next working day is the make-up Saturday the 14th,
    # then the Spring Festival runs to the 23rd.
    route = router.route("billing", "billing_query", None, local(2026, 2, 13, 16, 0))
    assert route.response_due_at == local(2026, 2, 14, 17, 30)
    assert route.resolution_due_at == local(2026, 2, 24, 17, 30)


def test_a_ticket_created_on_a_make_up_sunday_counts_from_it(router) -> None:
    # Sunday 20 September 2026 is a working day; complaints answer the same day.
    route = router.route("complaint", None, None, local(2026, 9, 20, 9, 0))
    assert route.response_due_at == local(2026, 9, 20, 17, 30)
    # 5 working days: 21, 22, 23, 24, then 25-27 is the Mid-Autumn holiday, so the 28th.
    assert route.resolution_due_at == local(2026, 9, 28, 17, 30)


def test_same_day_limit_after_closing_time_moves_to_next_working_day(router) -> None:
    route = router.route("complaint", None, None, local(2026, 9, 30, 18, 0))
    assert route.response_due_at == local(2026, 10, 8, 17, 30)


def test_urgent_repairs_run_on_calendar_hours_through_holidays(router) -> None:
    start = local(2026, 10, 1, 3, 0)
    route = router.route("repair", "burst_main", None, start)
    assert route.priority == "urgent"
    assert route.department == "network_repair"
    assert route.response_due_at == start + dt.timedelta(minutes=30)
    assert route.resolution_due_at == start + dt.timedelta(hours=24)


def test_business_type_must_match_category(router) -> None:
    with pytest.raises(RoutingError, match="belongs to category 'repair'"):
        router.route("billing", "burst_main", None, local(2026, 9, 1, 9, 0))
    with pytest.raises(RoutingError, match="unknown business_type"):
        router.route("repair", "volcano", None, local(2026, 9, 1, 9, 0))


def test_escalation_steps_are_in_time_order(router) -> None:
    start = local(2026, 9, 24, 9, 0)
    route = router.route("repair", "leak", None, start)
    steps = router.escalation_times(start, route.response_due_at, route.resolution_due_at)
    moments = [m for m, _ in steps]
    assert moments == sorted(moments)
    names = [s.name for _, s in steps]
    assert names == ["response_overdue", "warning", "overdue", "overdue_level2"]


def test_a_bad_routing_file_is_refused_with_the_place_named(tmp_path: Path, router) -> None:
    bad = tmp_path / "routing.yml"
    text = (ROOT / "config/routing.yml").read_text(encoding="utf-8")
    bad.write_text(text.replace("department: meter\n", "department: nowhere\n", 1), encoding="utf-8")
    with pytest.raises(RoutingError, match="unknown department 'nowhere'"):
        load_routing(bad, router.calendar)


def test_a_bad_calendar_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "cal.yml"
    bad.write_text("years:\n  2026:\n    workdays: [2026-10-09]\n", encoding="utf-8")
    with pytest.raises(CalendarError, match="not a weekend day"):
        load_calendar(bad)
