"""The durable store, one per service: where every undelivered event is kept.

- ``journal`` (each process's write-ahead log) with ``segment`` (one of its files) and
  ``orphans`` (reading journal files and adopting those of ended processes);
- ``spool`` (the stdlib front door the hook writes);
- ``outbox`` (the shared queue of event chunks), with ``deadletters`` and ``shared`` (the
  state processes share: breaker, health, leases) in the same ``diskstore`` cache (the
  only module that imports diskcache); ``quarantine`` (a damaged outbox set aside);
  ``forksafe`` (the one lock ``fork()`` waits for, held inside SQLite);
- ``doubt`` (events a cut request may have stored), ``inventory`` (what waits, and where);
- ``services`` (one store per service inside the cache directory), ``stores`` (other
  services' and legacy stores), ``cachedir`` (where the cache directory is, and that it is
  private), ``state`` (process-local state when sharing is off).

Standard library only, but for ``diskstore``.
"""
