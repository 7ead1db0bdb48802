"""The task supervisor, its schedulers, its pool and background workers.

The supervisor is built in four parts, each a class over the one before,
so that a reader meets one concern at a time:

1. :class:`~.aloops.ALoopHost`: the supervisor's own loop and its named
   aloops;
2. :class:`~.registry.SchedulerHost`: the registry of schedulers, and
   running their loops (the contract is the :class:`~.schedulers.Scheduler`
   protocol);
3. :class:`~.job_host.AsyncJobHost`: neotasker's async jobs, small
   interval coroutines run by named job schedulers (:mod:`.job_scheduler`,
   :mod:`.jobs`), which are schedulers like any other;
4. :class:`~.core.SupervisorCore`: the task pool (:mod:`.pool`), start,
   and the one stop that ends everything in order.

:class:`~.supervisor.TaskSupervisor` adds to the core the factories of
supervised lease managers and grinders, and :mod:`.supervisor` is the only
module here that imports :mod:`neoleasepool.sync`.

Why split the core from ``TaskSupervisor`` rather than import the facades
lazily inside its methods: background workers (:mod:`.worker_base`,
:mod:`.async_worker`, :mod:`.interval_worker`, :mod:`.workers`) and async
jobs run under a supervisor but need nothing of leasing, and an import
hidden in a method is still a dependency, only one the module graph does
not show.  With the split, workers depend on the core alone, and find
the global ``task_supervisor`` through the slot in :mod:`.default`, which
:mod:`.supervisor` fills when it creates it.  No worker or job module
imports leasing, grinders or the facades, at module level or anywhere
else, and ``tests/test_layers.py`` checks that.  See
``doc/architecture.md``.
"""
