"""Keep the departments table in step with the routing file."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hotline.tickets.lifecycle import forget_departments
from hotline.tickets.routing import Router
from models import Department, Staff


async def sync_departments(session: AsyncSession, router: Router) -> None:
    """Insert or rename departments and resolve each 督办人's username to a staff id.

    Departments dropped from the file stay in the table: old tickets point at them.
    """
    existing = {d.code: d for d in (await session.execute(select(Department))).scalars()}
    usernames = {spec.supervisor for spec in router.spec.departments.values() if spec.supervisor}
    staff_ids = dict((await session.execute(
        select(Staff.username, Staff.id).where(Staff.username.in_(usernames)))).all()) if usernames else {}
    for code, spec in router.spec.departments.items():
        dept = existing.get(code)
        if dept is None:
            dept = Department(code=code, name=spec.name)
            session.add(dept)
        dept.name = spec.name
        dept.supervisor_id = staff_ids.get(spec.supervisor) if spec.supervisor else None
    await session.flush()
    forget_departments()
