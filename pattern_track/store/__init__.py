"""The durable store, one per service: where every undelivered event is kept.

``journal`` (each process's write-ahead log) and ``orphans`` (reading and adopting the
journals of ended processes), ``spool`` (the stdlib front door the hook writes),
``outbox`` (the shared diskcache queue, dead letters and shared state; the only module
that imports diskcache), ``services`` (one store per service inside the cache directory),
``stores`` (other services' and legacy stores), ``cachedir`` (where the cache directory is,
and that it is private), ``state`` (process-local state when sharing is off). Standard
library only, but for ``outbox``.
"""
