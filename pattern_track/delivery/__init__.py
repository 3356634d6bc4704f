"""Delivery: from memory or the outbox to the service, and what its answers mean.

``transport`` (HTTP; the only module that imports requests), ``batches`` (send a list of
events, one outcome each), ``outcome`` (what an answer means, in one place), ``settle``
(what to do with each event then), ``breaker`` (pybreaker over shared state; the only
module that imports it), ``health``, ``backoff``, ``parking`` (poison isolation),
``core`` (the parts one tracker's engines share, and when to send), ``dispatcher`` and
``stash`` (fresh events: the memory stage and where they go when not sent), ``drainer``
and ``replay`` (the outbox drainer), ``readback`` (what the service stored, through its
evolution route; standard library only) with ``readwalk`` (its breadth-first walk).
"""
