"""Integrations with other systems (12345 today; the SMS gateway and billing later).

Everything the service tells another system goes through one durable outbox
(outbox.py): a row written in the same transaction as the change, delivered
by one worker with retries, in order per key, once across processes. Each
system brings a `Transport` (how to send) and registers it; see gov12345/.
"""
