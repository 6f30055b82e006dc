"""Staff accounts: the one place they are created or changed."""
from __future__ import annotations

import secrets

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hotline.auth.passwords import hash_password
from models import Department, Staff
from models.staff import ROLES

MIN_PASSWORD = 8


class StaffError(ValueError):
    pass


async def upsert_staff(session: AsyncSession, username: str, password: str, role: str,
                       display_name: str | None = None, department: str | None = None) -> Staff:
    """Create a staff member, or set the role, department and password of an existing one."""
    if role not in ROLES:
        raise StaffError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD:
        raise StaffError(f"the password must have at least {MIN_PASSWORD} characters")
    dept_id = None
    if department:
        dept_id = (await session.execute(select(Department.id).where(Department.code == department))).scalar()
        if dept_id is None:
            raise StaffError(f"unknown department {department!r}")
    elif role == "department":
        raise StaffError("department staff need --department")
    staff = (await session.execute(select(Staff).where(Staff.username == username))).scalar_one_or_none()
    password_hash = await hash_password(password)
    if staff is None:
        staff = Staff(username=username, display_name=display_name or username, role=role,
                      department_id=dept_id, password_hash=password_hash)
        session.add(staff)
    else:
        staff.role, staff.department_id, staff.password_hash = role, dept_id, password_hash
        staff.failed_logins, staff.locked_until = 0, None
        if display_name:
            staff.display_name = display_name
    await session.flush()
    return staff


async def create_first_admin(session: AsyncSession, username: str = "admin") -> str:
    """The first admin of a new installation, with a generated password (returned, to be shown once).

    Refused once any admin exists: resetting a password is adduser's job, by someone who knows it."""
    admins = (await session.execute(select(func.count()).select_from(Staff).where(Staff.role == "admin"))).scalar_one()
    if admins:
        raise StaffError("an admin already exists; use adduser to add or reset staff")
    password = secrets.token_urlsafe(15)  # 20 characters, 120 bits
    await upsert_staff(session, username, password, "admin", display_name="管理员")
    return password
