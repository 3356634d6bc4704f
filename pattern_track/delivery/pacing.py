"""Pacing under the service's rate limit, learnt from its own answers.

The real service allows 1000 requests per sliding 60 s, **one budget for every client of a
team** (wire-contract.md): a batch counts one, a refused request is not counted, and a 429
carries no ``Retry-After``. Its health route is not limited and reports
``rate_limiting: {current_window_requests, max_requests_per_window, window_seconds}``; the
count is the one at the last limited request (never below the truth), so "room" in a
fresh health answer is reliable and "full" may be stale. What this module does with that,
for every process of the machine at once (the ``pace`` record in the service's shared
state):

- **A 429 never counts against the breaker** (outcome.py); it sets the window *full*.
- **Backoff on the window's scale**: after a 429 without ``Retry-After`` no limited request
  goes for ``uniform(0.25, 1) × window`` (jitter spreads the machines of a fleet).
- **AIMD**: the machine's gap between limited requests doubles on a 429 (from
  ``window / limit``, at most the window) and shrinks by ``window / limit`` per stored
  request, down to none: a machine alone at the limit settles at its share.
- **Under pressure** (the window was seen full within two windows): a limited request goes
  only when a health answer at most ``poll_s()`` old shows room; health is advice, never a
  wall: after a window without room the request goes anyway and its answer tells. The
  dispatcher then keeps fresh events for the drainer (``core.may_send``), which sends
  full batches (up to ``batch_size`` / ``batch_max_bytes``) at the machine's gap.

The service's window and limit come from health (defaults: the real service's 1000 per
60 s). All times are ``clock.monotonic()`` seconds, shared by the machine's processes.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["DEFAULT_LIMIT", "DEFAULT_WINDOW_S", "Pacer", "gate", "rate_limiting"]

DEFAULT_WINDOW_S = 60.0
DEFAULT_LIMIT = 1000
KEY = "pace"
#: How long a copy of the shared record serves before it is read again, in seconds.
READ_EVERY_S = 0.25


def rate_limiting(doc: Any) -> tuple[int, float, int] | None:
    """``(limit, window_s, in_window)`` from a health answer's JSON, or None if absent or
    malformed (the service's ``performance.rate_limiting``)."""
    try:
        rate = doc["performance"]["rate_limiting"]
        limit, window, used = rate["max_requests_per_window"], rate["window_seconds"], rate["current_window_requests"]
    except (KeyError, TypeError):
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (limit, window, used)):
        return None
    if limit <= 0 or not 0 < window <= 3600 or used < 0:
        return None
    return int(limit), float(window), int(used)


class Pacer:
    """The machine's pace for one service; ``store`` is the shared state (get/set/update)."""

    def __init__(self, store: Any, clock: Any, *, rng: Any = None, fresh_s: float = READ_EVERY_S) -> None:
        self._store = store
        self._clock = clock
        self._rng = rng  # random.Random, made on first use
        self._fresh_s = fresh_s
        self._copy: dict = {}
        self._read_at: float | None = None

    # -- what the service said -------------------------------------------------------------

    def _record(self) -> dict:
        """The shared record, read at most every ``fresh_s`` (a read per request would cost
        the drain its throughput; other processes' changes arrive within that)."""
        now = self._clock.monotonic()
        if self._read_at is None or not 0 <= now - self._read_at < self._fresh_s:
            record = self._store.get(KEY)
            self._copy = record if isinstance(record, dict) else {}
            self._read_at = now
        return self._copy

    def _update(self, change: Any) -> None:
        self._read_at = None  # read-modify-write from the shared value, not the copy
        record = dict(self._record())
        change(record)
        self._store.set(KEY, record)
        self._copy, self._read_at = record, self._clock.monotonic()

    def _uniform(self, low: float, high: float) -> float:
        if self._rng is None:
            import random

            self._rng = random.Random()
        return self._rng.uniform(low, high)

    def window(self) -> tuple[int, float]:
        """``(limit, window_s)`` as health last reported them."""
        record = self._record()
        return int(record.get("limit") or DEFAULT_LIMIT), float(record.get("window_s") or DEFAULT_WINDOW_S)

    def slot_s(self) -> float:
        """The window's time per request: ``window_s / limit`` (0.06 s on the real service)."""
        limit, window = self.window()
        return window / limit

    def rate_limited(self, retry_after_s: float | None) -> float:
        """A 429: the window is full. Returns the seconds this machine now waits."""
        now = self._clock.monotonic()
        limit, window = self.window()
        wait = retry_after_s if retry_after_s is not None else self._uniform(0.25, 1.0) * window

        def change(record: dict) -> None:
            record["full_at"] = now
            record["gap_s"] = min(window, max(2 * float(record.get("gap_s") or 0.0), window / limit))
            record["until"] = max(float(record.get("until") or 0.0), now + wait)
            record["refused"] = int(record.get("refused") or 0) + 1

        self._update(change)
        return wait

    def admitted(self) -> None:
        """A limited request was answered (stored or not): it was inside the limit."""
        record = self._record()
        gap = float(record.get("gap_s") or 0.0)
        if gap > 0:
            self._update(lambda r: r.update(gap_s=max(0.0, gap - self.slot_s())))

    def health(self, doc: Any) -> None:
        """A health answer's ``rate_limiting`` (called for every answer with a JSON body)."""
        found = rate_limiting(doc)
        if found is None:
            return
        limit, window, used = found
        now = self._clock.monotonic()

        def change(record: dict) -> None:
            record.update(limit=limit, window_s=window, seen_at=now, room=used < limit)
            if used >= limit:
                record["full_at"] = now

        self._update(change)

    def sent(self) -> None:
        """A limited request is about to go: the gap counts from now, and the room a health
        answer showed is taken (the next request under pressure asks again)."""
        now = self._clock.monotonic()
        record = self._record()
        if record.get("gap_s") or (record.get("room") and self.under_pressure()):
            self._update(lambda r: r.update(last_s=now, room=False))

    # -- may a limited request go? -----------------------------------------------------------

    def under_pressure(self) -> bool:
        """Was the window seen full within the last two windows?"""
        record = self._record()
        full_at = record.get("full_at")
        _, window = self.window()
        return full_at is not None and 0 <= self._clock.monotonic() - float(full_at) < 2 * window

    def poll_s(self) -> float:
        """How fresh a health answer must be to vouch for room, and how often to ask:
        a slot's time, between 1 and 10 s, jittered."""
        return min(10.0, max(1.0, self.slot_s())) * self._uniform(0.75, 1.25)

    def wait_s(self) -> float:
        """Seconds before this machine's next limited request may go, by its backoff and its
        gap alone (no network; 0: now). Under pressure see also ``needs_room``."""
        record = self._record()
        now = self._clock.monotonic()
        until = float(record.get("until") or 0.0)
        gap = float(record.get("gap_s") or 0.0)
        last = record.get("last_s")
        _, window = self.window()
        waits = [until - now]
        if gap and last is not None:
            waits.append(float(last) + gap - now)
        wait = max(waits)
        return wait if 0.0 < wait <= 2 * window + 600 else 0.0  # further: another boot's clock

    def needs_room(self) -> bool:
        """Under pressure, with no fresh health answer showing room? (Then ask health;
        after a window of asking, go anyway: a stale count must not stop delivery.)"""
        if not self.under_pressure():
            return False
        record = self._record()
        now = self._clock.monotonic()
        seen = record.get("seen_at")
        if seen is not None and record.get("room") and 0 <= now - float(seen) <= 2.0:
            return False
        _, window = self.window()
        full_at = float(record.get("full_at") or now)
        first_full = float(record.get("full_since") or full_at)
        return now - first_full < window

    def note_waiting(self) -> float:
        """The machine waits for room: remember since when (for the go-anyway rule) and
        when to ask health again (every process of the machine asks once per poll).
        Returns the seconds until then."""
        now = self._clock.monotonic()
        poll = self.poll_s()

        def change(record: dict) -> None:
            since = record.get("full_since")
            _, window = self.window()
            if since is None or now - float(since) > 2 * window:
                record["full_since"] = now
            record["ask_at"] = now + poll

        self._update(change)
        return poll

    def ask_in_s(self) -> float:
        """Seconds until health may be asked again for room (0: now)."""
        ask_at = self._record().get("ask_at")
        left = 0.0 if ask_at is None else float(ask_at) - self._clock.monotonic()
        return left if 0.0 < left <= 60.0 else 0.0

    def went(self) -> None:
        """A request went under pressure: the go-anyway clock starts again."""
        self._update(lambda r: r.pop("full_since", None))

    def snapshot(self) -> dict:
        """For ``stats()``: ``{limit, window_s, gap_s, wait_s, under_pressure, refused}``."""
        record = self._record()
        limit, window = self.window()
        return {"limit": limit, "window_s": window, "gap_s": round(float(record.get("gap_s") or 0.0), 3),
                "wait_s": round(self.wait_s(), 3), "under_pressure": self.under_pressure(),
                "refused": int(record.get("refused") or 0)}


def gate(core: Any) -> float:
    """Seconds this machine must still wait before a rate-limited request (0: go).
    Under pressure a fresh health answer (not limited) must show room in the window
    first; after a window without room the request goes anyway (pacing.py)."""
    pacer = core.pacer
    if pacer is None:
        return 0.0
    wait = pacer.wait_s()
    if wait > 0:
        return wait
    if not pacer.needs_room():
        if pacer.under_pressure():
            pacer.went()
        return 0.0
    ask_in = pacer.ask_in_s()
    if ask_in > 0:
        return ask_in  # another step (of any process of the machine) asked just now
    core.health.check(teach_breaker=False)  # its rate window reaches the pacer
    if not pacer.needs_room():
        pacer.went()
        return 0.0
    return pacer.note_waiting()
