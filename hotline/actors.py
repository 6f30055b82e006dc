"""Who is acting: a staff member, the bot's service token, the system, a resident, the bot."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ActorKind = Literal["staff", "service", "system", "resident", "bot"]


@dataclass(frozen=True)
class Actor:
    kind: ActorKind
    name: str
    id: int | None = None
    role: str | None = None  # agent, supervisor, department, admin for staff
    department_id: int | None = None

    @property
    def is_staff(self) -> bool:
        return self.kind == "staff"


SYSTEM = Actor(kind="system", name="系统")
SERVICE = Actor(kind="service", name="服务接口")
RESIDENT = Actor(kind="resident", name="居民")
BOT = Actor(kind="bot", name="智能客服")
