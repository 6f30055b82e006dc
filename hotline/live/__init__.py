"""What staff consoles hear as it happens: the WebSocket stream and, on PostgreSQL,
the fan-out that carries every process's events to every other process."""
