"""GET /api/meta: the names the console and other services show, from the registry and configuration
the code itself uses (channels, categories, business types, departments, statuses, roles)."""
from __future__ import annotations

from aiohttp import web

from hotline.api.registry import STAFF_AND_SERVICE, ctx_of, json_response, route
from hotline.channels import registry as channels
from hotline.tickets.lifecycle import STATUS_LABELS
from models.conversation import CONVERSATION_STATUSES
from models.staff import ROLES

ROLE_LABELS = {"agent": "客服", "supervisor": "班长（督办人）", "department": "部门人员", "admin": "管理员"}
CONVERSATION_STATUS_LABELS = {"bot": "智能客服", "waiting": "等待人工", "agent": "人工接待", "closed": "已结束"}


@route("GET", "/api/meta", "Channels, categories, business types, departments, statuses and roles with their "
       "Chinese names", tag="meta", roles=STAFF_AND_SERVICE)
async def meta(request: web.Request) -> web.Response:
    spec = ctx_of(request).router.spec
    return json_response({
        "channels": [info.as_json() for info in channels.infos()],
        "categories": {k: v.name for k, v in spec.categories.items()},
        "business_types": {k: {"name": v.name, "category": v.category, "department": v.department,
                               "priority": v.priority,
                               "limits": {p: {"response": lim.response.describe(),
                                              "resolution": lim.resolution.describe()}
                                          for p, lim in v.limits.items()}}
                           for k, v in spec.business_types.items()},
        "departments": {k: v.name for k, v in spec.departments.items()},
        "statuses": STATUS_LABELS,
        "conversation_statuses": {s: CONVERSATION_STATUS_LABELS[s] for s in CONVERSATION_STATUSES},
        "roles": {r: ROLE_LABELS[r] for r in ROLES},
    })
