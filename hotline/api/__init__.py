"""The JSON API under /api/: thin views that parse, check and call one action."""
