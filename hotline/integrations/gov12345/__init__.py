"""The 12345 exchange: orders in, every step back out through the outbox (docs/12345.md)."""
