"""Tickets (工单): routing, time limits, the lifecycle and escalation."""
