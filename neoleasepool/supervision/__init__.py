"""Layer 4: the task supervisor.

The supervisor owns its own loop thread, named aloops, a thread pool,
background workers and a registry of schedulers, and stops them in order.
See ``doc/architecture.md``.
"""
