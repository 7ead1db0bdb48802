"""Layer 0: small tools every other layer uses.

Argument validation, bridges between asyncio and concurrent futures, the
mailbox that batches cross-thread posts, loop binding, helper threads and
deadlines. Nothing here knows about pools, leases or grinders; see
``doc/architecture.md`` for the layers.
"""
