"""A reference collector that answers like the pattern intelligence service.

Tests need a service that behaves like the real one in ``wire-contract.md``: the same
routes, status codes and body shapes, odd ones included (a duplicate is a 200, a lost
database is a 400 for one event but a 200 for a batch, a NUL character is a per-event
400, ``/lineage/track-batch`` is a 405, a 429 has no ``Retry-After``). This is that
service, in memory or on SQLite, built on the standard library alone and importing
nothing else from ``pattern_track``, so it runs anywhere:
``python -m pattern_track.collector --port 8053`` or ``pattern-track serve``.

Fault modes, switched at run time by ``Collector.set_fault(mode, **params)`` or
``POST /_collector/fault {"mode": ..., **params}``, act on the two track routes (health
and the read routes only where said):

- ``none``: normal service.
- ``error(status=500, detail=None)``: ``{"detail"}`` with that status (503 and 504 carry
  the real service's texts).
- ``rate_limit(retry_after=None)``: 429, with ``Retry-After`` only when given.
- ``degraded``: health says degraded / database_unavailable; track routes answer 503,
  evolution 503 ``{success: false, error, pattern_id}``, the lineage query 503 ``{detail}``.
- ``db_down``: health still says healthy but pool_size is 0; one event gets the transient
  400 ``ConnectionRefusedError``; a batch gets a 200 with every event failed; evolution
  answers 500 ``{success: false, error: "Evolution path query failed: ..."}``, the lineage
  query 500 ``{success: false, error, metadata: {error_type}}``.
- ``hang``: never answer (any route) until the mode changes, then 504 with nothing
  stored (the lineage query: its own 504); health and evolution, which have no timeout
  on the service, then answer normally. ``stop()`` closes the connection instead.
- ``flaky(every=2)``: every ``every``-th track request answers 500.
- ``slow(delay_s=0.5)``: wait, then answer normally (every route).
- ``trickle(interval_s=1.0)``: headers at once, then one body byte per interval.
- ``redirect(location="/redirected")``: 307 to ``location``.
- ``html``: 200 with an HTML page (every route).
- ``empty``: 200 with an empty body.
- ``unknown_error(error_type="WeirdError", match="")``: each event whose ``pattern_id``
  contains ``match`` (every event when empty) fails in the service's per-event shape with
  that ``error_type``: a 400 ``{success: false, error, metadata: {error_type}}`` alone, an
  entry of ``failed_results`` in a batch (a 200) whose other events are stored. The type
  a client has never seen, for testing how it treats one.
- ``idle_pool(idle_s=300.0)``: the real service's asyncpg pool, which empties after 300 s
  without a lineage request: health says healthy / operational but ``database_pool`` has
  ``pool_size`` and ``free_size`` 0 from the moment the mode is set, and again ``idle_s``
  after the last track request (single or batch) that got past validation or the last
  read; such a request is served normally and refills the pool (a read acquires a
  connection from it). Health requests never refill it. The collector's ``clock`` times
  it. (Mode ``none`` always reports a full pool.)
- ``body_limit(max_bytes=65536)``: a proxy in front of the service that refuses large
  bodies, as nginx's ``client_max_body_size`` does: a request (to any route but
  ``/_collector/*``) whose body is longer than ``max_bytes`` gets a 413 with nginx's
  HTML page and ``Connection: close``, and nothing is stored or counted against the
  rate limit; smaller requests are served normally.

Three modes imitate a service that **commits the events and then fails to tell the
client** (wire-contract.md: an abandoned request is still stored, a batch goes on after
its client has gone), so a resend is a duplicate. The route runs as normal, and whatever
it answers (a 200, or a 4xx that stored nothing) is then kept from the client:

- ``late(delay_s=2.0)``: the answer leaves ``delay_s`` after the events were stored; a
  client whose read timeout is shorter gives up. The wait holds no lock (other requests
  go on) and ends when the collector stops (the connection is then closed, unanswered).
  The request is counted when its answer leaves.
- ``truncate(at_bytes=20)``: the status line and headers, with the full
  ``Content-Length``, then only the first ``at_bytes`` bytes of the body (always short of
  the whole body), then the connection closes (no ``Connection: close``), as a reply cut
  by a proxy or a dropped line. requests raises ``ChunkedEncodingError`` ("Connection
  broken: IncompleteRead(20 bytes read, N more expected)"), urllib ``IncompleteRead``.
- ``reset(after_events=None)``: a batch stores its first ``after_events`` events in order
  (each as normal: one may still fail on its own; ``None``: all of them), one event is
  stored unless ``after_events`` is 0; then the connection is reset (TCP RST: ``SO_LINGER``
  on with timeout 0, then close) with no answer at all, as a service that died mid-batch.
  requests raises ``ConnectionError`` ("Connection aborted.", ConnectionResetError(104,
  'Connection reset by peer')). The state counts it as ``"reset"``, not a status.

The other modes (``error``, ``rate_limit``, ``flaky``, ``trickle``, ``redirect``, ``empty``,
``unknown_error``, ``late``, ``truncate``, ``reset``) leave health and the read routes alone.

Service routes, under ``/api/pattern-traceability``: ``POST /lineage/track``, ``POST
/lineage/track/batch``, ``GET /health``, ``GET /lineage/{pattern_id}/evolution`` (what is
stored: the id's nodes, every version, and the edges into and out of them, one hop; not
rate-limited) and ``GET /lineage/{pattern_id}?query_type=descendants`` (direct children;
the default ``query_type=ancestry`` answers 500, broken as on the service). A path is
matched percent-decoded, as Starlette does, so an id with a ``/`` cannot be read.

Control routes: ``POST /_collector/fault``, ``GET /_collector/state``,
``GET /_collector/events``, ``POST /_collector/reset``.

Modules, bottom up: ``contract`` (request model, checks, answer shapes), ``store`` (nodes
and events, how one event is stored), ``reads`` (the read routes' answers), ``modes``
(the fault modes' parameters and help), ``faults`` (the current mode and what it does), ``service``
(the real service's routes), ``handler`` (HTTP), ``server`` (``Collector``: lifecycle and
control routes), ``command`` (``main``).
"""

from .command import main
from .contract import DEFAULT_PORT
from .faults import FAULT_MODES
from .server import Collector

__all__ = ["Collector", "DEFAULT_PORT", "FAULT_MODES", "main"]
