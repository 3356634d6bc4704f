"""Delivery: from memory or the outbox to the service, and what its answers mean.

- ``transport`` (HTTP; the only module that imports requests) with ``deadlines`` (the
  whole-request deadline and abort) and ``wire`` (the routes, ``Answer``, ``NoAnswer``);
- ``batches`` (send a list of events, one outcome each), ``direct`` (send now, on the
  caller's thread, when no disk can keep them);
- ``outcome`` (what an answer means, in one place) with ``answers`` (reading a body and
  ``Retry-After``), ``settle`` (what to do with each event then);
- ``breaker`` (pybreaker over shared state; the only module that imports it), ``health``,
  ``probe`` (is the service back?), ``backoff``, ``parking`` (poison isolation);
- ``core`` (the parts one tracker's engines share, and when to send), ``dispatcher``,
  ``senders`` and ``stash`` (fresh events: the memory stage, its threads, and where they
  go when not sent), ``drainer`` and ``replay`` (the outbox drainer), ``reconcile`` (ask
  what the service has before resending events in doubt);
- ``readback`` (what the service stored, through its evolution route; standard library
  only) with ``readwalk`` (its breadth-first walk).
"""
