"""The words of the IVR's flow files, defined once: the flow checker (flows.py), the engine that runs
the flows (engine.py) and the call records' API all take them from here."""
from __future__ import annotations

# An action node's name → the outcomes it can report (a flow's `outcomes:` keys).
ACTIONS: dict[str, tuple[str, ...]] = {
    # found: the caller may hear the balance; unverified: the amount due at most, unless they prove it
    # (verify_caller); refused: too many different accounts asked about this hour.
    "lookup_account": ("found", "unverified", "unknown", "refused"),
    "verify_caller": ("verified", "wrong", "skipped", "locked"),
    "match_caller": ("found", "unknown", "several"),
    "create_ticket": ("created", "failed"),
    "list_outages": ("some", "none"),
    "voicemail_ticket": ("created", "failed"),
}
# What a `when:` branch may ask (optionally prefixed with "not ").
CONDITIONS: tuple[str, ...] = ("business_hours", "agents_on_duty", "has_arrears", "caller_area_outage",
                               "discloses_amount_due")
# What a call came to: a node's `outcome:`, and calls.outcome.
CALL_OUTCOMES: tuple[str, ...] = ("self_served", "ticket", "transferred", "voicemail", "abandoned", "failed")
