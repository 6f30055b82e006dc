"""The one door for outages, incidents and public-opinion alerts.

Each function works inside the caller's transaction: it writes the change,
its audit row (`incident_events`, with the actor) and queues the live event,
which consoles hear only after commit. Ticket changes go through the
lifecycle's door; residents are told after commit by the callers
(`hotline/incidents/notices.py`).
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from hotline.actors import SYSTEM, Actor
from hotline.errors import Refused
from hotline.events import publish_on_commit
from hotline.incidents.rules import IncidentRules
from hotline.tickets import lifecycle
from hotline.tickets.routing import Router
from models import Customer, Incident, IncidentEvent, IncidentReport, OpinionAlert, Outage, OutageArea, Ticket
from models.ticket import OPEN_STATUSES


class IncidentError(Refused):
    """Refused by this door; the API answers with its status (hotline/api/middleware.py)."""


def audit(session: AsyncSession, subject: str, subject_id: int, action: str, actor: Actor, now: dt.datetime,
          data: dict[str, Any] | None = None, **live: Any) -> None:
    session.add(IncidentEvent(subject=subject, subject_id=subject_id, action=action, actor_kind=actor.kind,
                              actor_id=actor.id, actor_name=actor.name, at=now, data=data or {}))
    publish_on_commit(session, {"type": f"{subject}.changed", "action": action, "id": subject_id,
                                "at": now.isoformat(), **live})


# --- outages (停水) -------------------------------------------------------------------------------

async def outage_areas(session: AsyncSession, outage: Outage) -> list[str]:
    found = list((await session.execute(select(OutageArea.area).where(
        OutageArea.outage_id == outage.id).order_by(OutageArea.id))).scalars())
    return found or [outage.area]


async def _set_areas(session: AsyncSession, outage: Outage, areas: list[str]) -> None:
    await session.execute(delete(OutageArea).where(OutageArea.outage_id == outage.id))
    session.add_all(OutageArea(outage_id=outage.id, area=a) for a in dict.fromkeys(areas))
    outage.area = areas[0]


def _check_times(starts_at: dt.datetime, ends_at: dt.datetime) -> None:
    if starts_at.tzinfo is None or ends_at.tzinfo is None:
        raise IncidentError(422, "invalid_time", "times need a time zone offset")
    if ends_at <= starts_at:
        raise IncidentError(422, "invalid_time", "the expected restoration must come after the start")


async def publish_outage(session: AsyncSession, *, areas: list[str], title: str, detail: str, planned: bool,
                         starts_at: dt.datetime, ends_at: dt.datetime, actor: Actor, now: dt.datetime) -> Outage:
    if not areas:
        raise IncidentError(422, "missing_areas", "an outage needs at least one area")
    _check_times(starts_at, ends_at)
    outage = Outage(area=areas[0], title=title, detail=detail, planned=planned, starts_at=starts_at,
                    ends_at=ends_at, published_by=actor.name)
    session.add(outage)
    await session.flush()
    await _set_areas(session, outage, areas)
    audit(session, "outage", outage.id, "publish", actor, now,
          {"areas": areas, "title": title, "planned": planned, "starts_at": starts_at.isoformat(),
           "ends_at": ends_at.isoformat()}, areas=areas)
    return outage


async def update_outage(session: AsyncSession, outage: Outage, *, actor: Actor, now: dt.datetime,
                        title: str | None = None, detail: str | None = None, ends_at: dt.datetime | None = None,
                        areas: list[str] | None = None) -> str:
    """Edit or extend (延长) an outage not yet over; returns the action recorded."""
    if outage.ended_at is not None:
        raise IncidentError(409, "ended", "the outage has ended")
    action, data = "edit", dict[str, Any]()
    if ends_at is not None and ends_at != outage.ends_at:
        _check_times(outage.starts_at, ends_at)
        action = "extend" if ends_at > outage.ends_at else "shorten"
        data["ends_at"] = {"from": outage.ends_at.isoformat(), "to": ends_at.isoformat()}
        outage.ends_at = ends_at
    if title is not None:
        outage.title, data["title"] = title, title
    if detail is not None:
        outage.detail, data["detail"] = detail, detail
    if areas:
        await _set_areas(session, outage, areas)
        data["areas"] = areas
    audit(session, "outage", outage.id, action, actor, now, data, areas=await outage_areas(session, outage))
    return action


async def end_outage(session: AsyncSession, outage: Outage, actor: Actor, now: dt.datetime, note: str = "") -> None:
    if outage.ended_at is not None:
        raise IncidentError(409, "ended", "the outage has ended already")
    outage.ended_at = now
    outage.ends_at = min(outage.ends_at, now)
    audit(session, "outage", outage.id, "end", actor, now, {"note": note},
          areas=await outage_areas(session, outage))


# --- incidents -------------------------------------------------------------------------------------

async def _area_of(session: AsyncSession, rules: IncidentRules, ticket: Ticket) -> str | None:
    if ticket.customer_id is not None:
        customer = await session.get(Customer, ticket.customer_id)
        if customer is not None and customer.area:
            return customer.area
    return rules.area_of_address(ticket.address or "") or rules.area_of_address(ticket.description or "") \
        or rules.area_of_point(ticket.latitude, ticket.longitude)


async def link_report(session: AsyncSession, router: Router, incident: Incident, ticket: Ticket,
                      now: dt.datetime) -> None:
    """The ticket is one of the incident's reports: no separate dispatch or chasing while it is linked."""
    session.add(IncidentReport(incident_id=incident.id, ticket_id=ticket.id, linked_at=now))
    ticket.next_escalation_at = None
    await lifecycle.transition(session, router, ticket, "comment", SYSTEM, now,
                               note=f"已并入事件 #{incident.id}（{incident.title}，{incident.area}），统一处置")
    audit(session, "incident", incident.id, "link", SYSTEM, now, {"ticket": ticket.number},
          status=incident.status, ticket=ticket.number)


async def detect(session: AsyncSession, router: Router, rules: IncidentRules, ticket: Ticket,
                 now: dt.datetime) -> tuple[Incident | None, bool]:
    """One incoming report: link it to an open incident of its kind and area, or raise a suspected
    incident when enough reports have clustered. Returns (its incident, whether it was newly raised)."""
    found = rules.rule_for(ticket.business_type)
    if found is None:
        return None, False
    kind, rule = found
    # Every report pays for this: as few statements as the answer needs (the area and the link are
    # written in one UPDATE at the end, the open incident and "already linked" read in one query).
    with session.no_autoflush:
        ticket.area = ticket.area or await _area_of(session, rules, ticket)
        if not ticket.area:
            return None, False
        if session.get_bind().dialect.name == "postgresql":
            # One detection per area and kind at a time: under READ COMMITTED a report looked at while
            # another raises the incident would otherwise miss both the incident (not yet committed)
            # and the cluster (committed, linked, by its next statement) and stay unlinked. SQLite's
            # writers are serialised by BEGIN IMMEDIATE already.
            # The same trip makes this transaction's commit asynchronous: the report itself committed
            # durably before detection began; a crash in the next fraction of a second can lose only
            # the link (the report is then chased as a ticket of its own), and every report no longer
            # waits for a WAL flush (p99 18-44 ms -> about 10 ms at a million tickets).
            await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key)), "
                                       "set_config('synchronous_commit', 'off', true)"),
                                  {"key": f"hotline.incident:{kind}:{ticket.area}"})
        linked_already = select(IncidentReport.id).where(IncidentReport.ticket_id == ticket.id).exists()
        row = (await session.execute(select(Incident, linked_already).where(
            Incident.area == ticket.area, Incident.kind == kind, Incident.status.in_(("suspected", "active")))
            .order_by(Incident.id.desc()).limit(1))).first()
        if row is not None:
            incident, already = row
            if already:
                return None, False
            await link_report(session, router, incident, ticket, now)
            return incident, False
        await session.flush()  # the cluster is read from the store, this report's area included
        linked = select(IncidentReport.ticket_id)
        cluster = list((await session.execute(select(Ticket).where(
            Ticket.area == ticket.area, Ticket.business_type.in_(rule.business_types),
            Ticket.created_at >= now - dt.timedelta(minutes=rule.minutes), Ticket.status.in_(OPEN_STATUSES),
            Ticket.id.not_in(linked)).order_by(Ticket.id))).scalars())
    if len(cluster) < rule.count or ticket not in cluster:
        return None, False  # too few yet, or this report is linked already (a retried detection)
    incident = Incident(status="suspected", area=ticket.area, kind=kind, business_type=ticket.business_type,
                        title=f"{ticket.area}{rule.title}", detected_at=now)
    session.add(incident)
    await session.flush()
    audit(session, "incident", incident.id, "raise", SYSTEM, now,
          {"reports": [t.number for t in cluster], "rule": kind}, status="suspected", area=ticket.area,
          reports=len(cluster), title=incident.title)
    for report in cluster:
        await link_report(session, router, incident, report, now)
    return incident, True


async def reports_of(session: AsyncSession, incident_id: int) -> list[Ticket]:
    return list((await session.execute(select(Ticket).join(IncidentReport, IncidentReport.ticket_id == Ticket.id)
                                       .where(IncidentReport.incident_id == incident_id)
                                       .order_by(Ticket.id))).scalars())


async def confirm(session: AsyncSession, incident: Incident, *, expected_restore_at: dt.datetime, text: str,
                  actor: Actor, now: dt.datetime) -> Outage:
    """Suspected → active: an unplanned outage in its area until the expected restoration."""
    if incident.status != "suspected":
        raise IncidentError(409, "not_suspected", f"the incident is {incident.status}")
    outage = await publish_outage(session, areas=[incident.area], title=incident.title, detail=text,
                                  planned=False, starts_at=incident.detected_at, ends_at=expected_restore_at,
                                  actor=actor, now=now)
    incident.status, incident.outage_id, incident.text = "active", outage.id, text
    incident.expected_restore_at, incident.decided_at, incident.decided_by = expected_restore_at, now, actor.name
    audit(session, "incident", incident.id, "confirm", actor, now,
          {"expected_restore_at": expected_restore_at.isoformat(), "outage_id": outage.id}, status="active")
    return outage


async def dismiss(session: AsyncSession, router: Router, incident: Incident, actor: Actor, now: dt.datetime,
                  note: str = "") -> None:
    """Not one cause: the reports go on as separate tickets (chased again); the cluster is not raised again."""
    if incident.status != "suspected":
        raise IncidentError(409, "not_suspected", f"the incident is {incident.status}")
    incident.status, incident.decided_at, incident.decided_by = "dismissed", now, actor.name
    for ticket in await reports_of(session, incident.id):
        lifecycle.rearm_escalation(ticket, router)
    audit(session, "incident", incident.id, "dismiss", actor, now, {"note": note}, status="dismissed")


async def end(session: AsyncSession, router: Router, incident: Incident, resolution: str, actor: Actor,
              now: dt.datetime) -> list[Ticket]:
    """Restored: every linked open ticket is resolved with the incident's note (callbacks follow), and
    its outage ends. Returns the tickets resolved."""
    if incident.status != "active":
        raise IncidentError(409, "not_active", f"the incident is {incident.status}")
    if not resolution.strip():
        raise IncidentError(422, "missing_note", "ending an incident needs the resolution (what was done)")
    resolved = []
    for ticket in await reports_of(session, incident.id):
        if ticket.status in OPEN_STATUSES:
            await lifecycle.transition(session, router, ticket, "resolve_with_incident", actor, now,
                                       note=resolution.strip())
            resolved.append(ticket)
    if incident.outage_id is not None:
        outage = await session.get(Outage, incident.outage_id)
        if outage is not None and outage.ended_at is None:
            await end_outage(session, outage, actor, now, resolution)
    incident.status, incident.ended_at, incident.resolution = "ended", now, resolution.strip()
    audit(session, "incident", incident.id, "end", actor, now,
          {"resolution": resolution, "resolved": [t.number for t in resolved]}, status="ended")
    return resolved


# --- public-opinion alerts (舆情) ----------------------------------------------------------------

async def raise_alert(session: AsyncSession, router: Router, *, words: list[str], excerpt: str,
                      conversation_id: int | None, message_id: int | None, now: dt.datetime) -> OpinionAlert:
    """Words that signal media or outside escalation: an alert for supervisors, and the resident's open
    tickets go up to urgent."""
    alert = OpinionAlert(conversation_id=conversation_id, message_id=message_id, words=words,
                         excerpt=excerpt[:500], created_at=now)
    session.add(alert)
    await session.flush()
    raised = []
    if conversation_id is not None:
        tickets = list((await session.execute(select(Ticket).where(
            Ticket.conversation_id == conversation_id, Ticket.status.in_(OPEN_STATUSES)))).scalars())
        for ticket in tickets:
            alert.ticket_id = alert.ticket_id or ticket.id
            if ticket.priority != "urgent":
                await lifecycle.transition(session, router, ticket, "raise_priority", SYSTEM, now,
                                           note=f"舆情预警（{'、'.join(words)}），提高为紧急")
                raised.append(ticket.number)
    audit(session, "alert", alert.id, "raise", SYSTEM, now, {"words": words, "raised": raised},
          words=words, excerpt=alert.excerpt[:120], conversation_id=conversation_id)
    return alert


async def acknowledge(session: AsyncSession, alert: OpinionAlert, actor: Actor, now: dt.datetime,
                      note: str = "") -> None:
    if alert.acknowledged_at is not None:
        raise IncidentError(409, "acknowledged", "the alert has been acknowledged already")
    alert.acknowledged_at, alert.acknowledged_by = now, actor.name
    audit(session, "alert", alert.id, "acknowledge", actor, now, {"note": note})
