"""Run one call through a flow from ivr_flows/, and record it in the shared store.

The engine knows nothing about SIP: it talks to a CallLine. Each node does
one thing; actions and conditions are the vocabulary below, and the flow file
decides how they are put together. The call record (caller, times, menu path,
digits, account, outcome, ticket, recording) is written when the call starts
and completed when it ends, however it ends.
"""
from __future__ import annotations

import datetime as dt
import logging
import string
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from hotline.actors import Actor
from hotline.context import AppContext
from hotline.customers import disclosure, verification
from hotline.customers.accounts import Statement, current_outages, get_customer, statement
from hotline.ivr import call_records, speech
from hotline.ivr.flows import Flow, Input, Menu, Node, Record
from hotline.ivr.line import CallerHungUp, CallLine
from hotline.ivr.prompts import PromptLibrary
from hotline.tickets import lifecycle
from hotline.tickets.lifecycle import TicketDraft, TicketError
from models import AgentPresence, Customer, CustomerPhone

log = logging.getLogger(__name__)

IVR = Actor(kind="system", name="语音导航")
MAX_STEPS = 300  # a flow that loops forever still ends the call


class _Vars(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""


@dataclass
class CallState:
    call_id: int
    vars: _Vars = field(default_factory=_Vars)
    menu_path: list[str] = field(default_factory=list)
    digits: str = ""
    account: str | None = None
    outcome: str | None = None
    ticket_id: int | None = None
    recording: str | None = None  # relative to the var directory
    arrears_fen: int = 0
    spoken: list[str] = field(default_factory=list)  # what the caller heard, in order
    verified_for: str | None = None  # the account the caller proved to own during this call


class FlowRunner:
    def __init__(self, ctx: AppContext, flow: Flow, prompts: PromptLibrary, line: CallLine,
                 agent_uri: str = "") -> None:
        self.ctx, self.flow, self.prompts, self.line, self.agent_uri = ctx, flow, prompts, line, agent_uri
        self.state: CallState | None = None

    # --- the call ------------------------------------------------------------------

    async def run(self) -> CallState:
        call_id = await call_records.begin(self.ctx, sip_call_id=self.line.call_id, caller=self.line.caller,
                                           callee=self.line.callee, now=self.ctx.clock())
        state = self.state = CallState(call_id)
        name: str | None = self.flow.start
        try:
            for _ in range(MAX_STEPS):
                if name is None:
                    break
                name = await self._step(self.flow.nodes[name])
            else:
                log.error("call %s: flow %s did not end after %d steps", self.line.call_id, self.flow.name, MAX_STEPS)
            if name is None and not state.outcome:
                state.outcome = "abandoned"  # the menu gave up on a caller who never chose
        except CallerHungUp as gone:
            state.digits += gone.partial
            if gone.failed and state.ticket_id is None:
                state.outcome = "failed"  # the caller heard nothing more: not served, whatever the node said
            elif not state.outcome:
                state.outcome = "abandoned"
        except Exception:
            log.exception("call %s failed in flow %s", self.line.call_id, self.flow.name)
            state.outcome = state.outcome or "failed"
        finally:
            await self._finish(state)
        return state

    async def _finish(self, state: CallState) -> None:
        await call_records.end(self.ctx, state.call_id, call_records.CallResult(
            outcome=state.outcome, menu_path=state.menu_path, digits=state.digits, account_number=state.account,
            ticket_id=state.ticket_id, recording_path=state.recording), self.ctx.clock())
        try:
            await self.line.hangup()
        except CallerHungUp:
            pass

    async def _step(self, node: Node) -> str | None:
        state = self.state
        assert state is not None
        if node.path:
            state.menu_path.append(node.path)
        if node.outcome:
            state.outcome = node.outcome
        for prompt in node.play or []:
            await self.say(prompt, interruptible=False)
        if node.menu:
            return await self._menu(node.menu)
        if node.input:
            return node.next if await self._input(node.input) else node.input.exhausted
        if node.action:
            outcome = await ACTIONS[node.action](self, node.args)
            return node.outcomes.get(outcome, node.next)
        if node.when is not None:
            for branch in node.when:
                if await self._condition(branch.if_):
                    return branch.then
            return node.else_
        if node.record:
            await self._record(node.record)
            return node.next
        if node.transfer is not None:
            if await self.line.transfer(node.transfer or self.agent_uri):
                state.outcome = "transferred"
                return None
            return node.on_failure
        if node.hangup is not None:
            for prompt in node.hangup:
                await self.say(prompt, interruptible=False)
            return None
        return node.next

    # --- prompts and keys -------------------------------------------------------------

    def text(self, prompt_id: str) -> str:
        assert self.state is not None
        return speech.numbers_in(self.flow.prompts[prompt_id].format_map(self.state.vars))

    async def say(self, prompt_id: str, interruptible: bool = True) -> str:
        text = self.text(prompt_id)
        static = not any(part[1] for part in string.Formatter().parse(self.flow.prompts[prompt_id]))
        audio = await self.prompts.audio(text, prompt_id if static else None)
        assert self.state is not None
        self.state.spoken.append(text)
        return await self.line.play(audio, interruptible)

    async def _menu(self, menu: Menu) -> str:
        assert self.state is not None
        for attempt in range(menu.retries):
            key = await self.say(menu.prompt) or await self.line.collect(1, "", menu.timeout)
            self.state.digits += key
            if key in menu.options:
                return menu.options[key]
            last = attempt == menu.retries - 1
            follow_up = menu.invalid_prompt if key else menu.timeout_prompt
            if follow_up and not last:
                await self.say(follow_up, interruptible=False)
        return menu.exhausted

    async def _input(self, spec: Input) -> bool:
        """Digits until the terminator, max_digits or silence; min_digits 0 takes a bare terminator."""
        assert self.state is not None
        for attempt in range(spec.retries):
            first = await self.say(spec.prompt)
            entered = await self.line.collect(spec.max_digits + (1 if spec.terminator else 0), spec.terminator,
                                              spec.timeout, already=first)
            self.state.digits += entered
            terminated = bool(spec.terminator) and entered.endswith(spec.terminator)
            value = entered[:-1] if terminated else entered
            complete = terminated or len(value) == spec.max_digits
            if complete and (value == "" and spec.min_digits == 0
                             or value.isdigit() and spec.min_digits <= len(value) <= spec.max_digits):
                self.state.vars[spec.save_as] = value
                return True
            if spec.invalid_prompt and attempt < spec.retries - 1:
                await self.say(spec.invalid_prompt, interruptible=False)
        return False

    async def _record(self, spec: Record) -> None:
        assert self.state is not None
        await self.say(spec.prompt, interruptible=False)
        relative = Path("recordings") / self.ctx.clock().strftime("%Y%m%d") / f"call-{self.state.call_id}.wav"
        path = self.ctx.config.var_dir / relative
        for folder in (path.parent.parent, path.parent):  # recordings/ and its day: the service's alone
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        seconds = await self.line.record(path, spec.max_seconds)
        if seconds > 0:
            self.state.recording = str(relative)
            self.state.vars[spec.save_as] = str(relative)

    # --- conditions -----------------------------------------------------------------------

    async def _condition(self, name: str) -> bool:
        negate = name.startswith("not ")
        result = await CONDITIONS[name.removeprefix("not ")](self)
        return result != negate

    def _local_now(self) -> dt.datetime:
        return self.ctx.clock().astimezone(self.ctx.router.calendar.timezone)

    async def _business_hours(self) -> bool:
        now, hours = self._local_now(), self.flow.agent_hours
        if hours.working_days_only and not self.ctx.router.calendar.is_working_day(now.date()):
            return False
        return hours.open <= now.time().replace(tzinfo=None) < hours.close

    async def _agents_on_duty(self) -> bool:
        """Within the agents' hours, with somewhere to transfer to, and someone 在线 in the console (the
        presence that offers conversations). Where no agent has ever set a presence, the hours alone decide."""
        if not self.agent_uri or not await self._business_hours():
            return False
        async with self.ctx.readers() as session:
            states = set((await session.execute(select(AgentPresence.status).distinct())).scalars())
        return not states or "online" in states

    async def _has_arrears(self) -> bool:
        assert self.state is not None
        return self.state.arrears_fen > 0

    async def _discloses_amount_due(self) -> bool:
        return self.ctx.config.privacy.anonymous_disclosure == disclosure.AMOUNT_DUE

    async def _caller_area_outage(self) -> bool:
        assert self.state is not None
        async with self.ctx.readers() as session:
            areas = set((await session.execute(select(Customer.area).join(CustomerPhone).where(
                CustomerPhone.phone == self.line.caller))).scalars())
            outages = [o for area in areas for o in await current_outages(session, self.ctx.clock(), area)]
        if not outages:
            return False
        self.state.vars["outage"] = "；".join(self._outage_words(o) for o in outages[:2])
        return True

    def _outage_words(self, outage: Any) -> str:
        tz = self.ctx.router.calendar.timezone
        starts, ends = outage.starts_at.astimezone(tz), outage.ends_at.astimezone(tz)
        return self.ctx.messages("ivr.outage", title=outage.title, starts=speech.month_day_clock(starts),
                                 ends=speech.month_day_clock(ends))

    # --- actions ----------------------------------------------------------------------------

    def _resident(self) -> verification.Resident:
        return verification.Resident(channel="phone", key=self.line.caller)

    async def _lookup_account(self, _args: dict[str, str]) -> str:
        """found: the caller may hear the balance (their number is registered to the account, or they proved
        it in this call); unverified: only the amount due, or a proof first; refused: too many accounts."""
        state = self.state
        assert state is not None
        account = state.vars["account"]
        if not account:
            return "unknown"
        try:
            async with self.ctx.sessions.begin() as session:
                found = await disclosure.disclose(self.ctx, session, self._resident(), account)
        except disclosure.TooManyLookups:
            return "refused"
        if found is None:
            return "unknown"
        state.account = account
        state.vars.update(account_spoken=speech.digits(account), amount_due=speech.money(found.amount_due_fen))
        if found.level == disclosure.FULL or state.verified_for == account:
            self._full_statement(found.statement)
            return "found"
        return "unverified"

    def _full_statement(self, found: Statement) -> None:
        assert self.state is not None
        self.state.arrears_fen = found.arrears_fen
        self.state.vars.update(balance=speech.money(found.balance_fen), arrears=speech.money(found.arrears_fen),
                               overdue_bills=speech.integer(found.overdue_bills))

    async def _verify_caller(self, _args: dict[str, str]) -> str:
        """The last four digits of a phone registered to the account just looked up, keyed as `proof`."""
        state = self.state
        assert state is not None
        proof, account = state.vars["proof"], state.account
        if not proof or not account:
            return "skipped"
        resident = self._resident()
        try:
            async with self.ctx.sessions.begin() as session:
                customer, method = await verification.prove(
                    session, self.ctx.config.privacy, resident, account, proof, self.ctx.clock(),
                    self.ctx.messages("residents.too_many_proofs"))
                found = await statement(session, customer, self.ctx.today()) if customer and method else None
        except verification.TooManyProofs:
            disclosure.refused(self.ctx, resident.channel, "proofs")
            return "locked"
        if found is None:
            return "wrong"
        state.verified_for = account
        self._full_statement(found)
        return "verified"

    async def _match_caller(self, _args: dict[str, str]) -> str:
        """The account typed in, else the one account the calling number belongs to."""
        state = self.state
        assert state is not None
        typed = state.vars["account"]
        async with self.ctx.readers() as session:
            if typed and await get_customer(session, typed) is not None:
                state.account = typed
                return "found"
            accounts = list((await session.execute(select(Customer.account_number).join(CustomerPhone).where(
                CustomerPhone.phone == self.line.caller).limit(2))).scalars())
        if len(accounts) == 1:
            state.account = state.vars["account"] = accounts[0]
            return "found"
        state.vars["account"] = ""
        return "several" if accounts else "unknown"

    async def _create_ticket(self, args: dict[str, str], recording: bool = False) -> str:
        state = self.state
        assert state is not None
        now = self.ctx.clock()
        description = f"{args.get('description', '电话来电')}（来电号码 {self.line.caller}）"
        draft = TicketDraft(category=args["category"], business_type=args.get("business_type"),
                            description=description, channel="phone", account_number=state.account,
                            phone=self.line.caller if self.line.caller.lstrip("+").isdigit() else None,
                            extra={"call_id": state.call_id})
        try:
            async with self.ctx.sessions.begin() as session:
                ticket = await lifecycle.create_ticket(session, self.ctx.router, draft, IVR, now)
                if recording and state.recording:
                    lifecycle.attach_recording(session, ticket, f"call-recording:{state.call_id}", now)
                number, ticket_id = ticket.number, ticket.id
                route = self.ctx.router.spec.business_types[ticket.business_type]
                urgent = route.limits.get("urgent") if ticket.priority == "urgent" else None
                limits = urgent or route.limits["normal"]
        except TicketError as exc:
            log.warning("call %s: ticket not created: %s", self.line.call_id, exc.message)
            return "failed"
        state.ticket_id = ticket_id
        state.vars.update(ticket_spoken=speech.digits(number.removeprefix("GD")),
                          response_limit=speech.numbers_in(limits.response.describe()),
                          resolution_limit=speech.numbers_in(limits.resolution.describe()))
        return "created"

    async def _voicemail_ticket(self, args: dict[str, str]) -> str:
        assert self.state is not None
        if not self.state.recording:
            return "failed"
        self.state.outcome = "voicemail"
        return await self._create_ticket(args, recording=True)

    async def _list_outages(self, _args: dict[str, str]) -> str:
        assert self.state is not None
        async with self.ctx.readers() as session:
            outages = await current_outages(session, self.ctx.clock())
        if not outages:
            self.state.vars["outages"] = self.flow.prompts.get("no_outages", "")
            return "none"
        self.state.vars["outages"] = "；".join(f"{o.area}，{self._outage_words(o)}" for o in outages[:3])
        return "some"


# The implementations of hotline/ivr/vocabulary.py's actions and conditions (a test checks they match).
ACTIONS: dict[str, Callable[[FlowRunner, dict[str, str]], Awaitable[str]]] = {
    "lookup_account": FlowRunner._lookup_account,
    "verify_caller": FlowRunner._verify_caller,
    "match_caller": FlowRunner._match_caller,
    "create_ticket": FlowRunner._create_ticket,
    "voicemail_ticket": FlowRunner._voicemail_ticket,
    "list_outages": FlowRunner._list_outages,
}
CONDITIONS: dict[str, Callable[[FlowRunner], Awaitable[bool]]] = {
    "business_hours": FlowRunner._business_hours,
    "agents_on_duty": FlowRunner._agents_on_duty,
    "has_arrears": FlowRunner._has_arrears,
    "discloses_amount_due": FlowRunner._discloses_amount_due,
    "caller_area_outage": FlowRunner._caller_area_outage,
}
