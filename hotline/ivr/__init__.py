"""The 24-hour IVR: voice menus from ivr_flows/*.yml run over SIP (see README)."""
