"""Custom actions of the hotline bot. They reach the store only through the hotline's HTTP API."""
