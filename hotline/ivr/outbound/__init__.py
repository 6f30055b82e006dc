"""Outbound calls: a dialler (pyVoIP registered as an extension) for callback surveys and outage notices."""
