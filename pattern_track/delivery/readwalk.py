"""``Walk``: the breadth-first state behind ``readback.walk``, apart from how a pattern is read.

Each direction (ancestors: edges whose target is a visited id; descendants: edges whose
source is) goes level by level to a depth; the answers read are shared by both, so a
pattern is read once; the budget (requests, deadline) is checked before each read.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["Read", "Walk"]

#: ``(pattern_id, seconds left) -> (evolution data, None)`` or ``(None, why it is unknown)``.
Read = Callable[[str, float], "tuple[dict | None, str | None]"]


class Walk:
    """The walk's state: the answers read (shared by both directions), what was found, the budget.

    ``read(pattern_id, left_s)`` returns ``(doc, None)`` or ``(None, reason)``; ``deadline``
    is on ``clock`` (monotonic seconds); ``first`` holds the answers already read.
    """

    def __init__(self, read: Read, *, deadline: float, max_requests: int, clock: Callable[[], float],
                 first: dict[str, dict]) -> None:
        self._fetch, self.deadline, self.max_requests, self.clock = read, deadline, max_requests, clock
        self.docs, self.requests = dict(first), len(first)
        self.nodes: dict[str, dict] = {}
        self.edges: dict[str, dict] = {}
        self.unreachable: dict[str, str] = {}
        self.truncated: dict[str, str] = {}
        for doc in first.values():
            self._add_nodes(doc)

    def _add_nodes(self, doc: dict) -> None:
        for node in doc["evolution_nodes"]:
            self.nodes.setdefault(node["node_id"], node)

    def direction(self, start: str, depth: int, *, upward: bool) -> None:
        """Breadth first from ``start``, one direction, ``depth`` hops."""
        near, far = ("target_pattern_id", "source_pattern_id") if upward else ("source_pattern_id", "target_pattern_id")
        seen, level = {start}, [start]
        for hop in range(depth + 1):
            if not level:
                break
            found: list[tuple[dict, str]] = []
            for pid in level:
                found += [(edge, edge[far]) for edge in self.docs[pid]["evolution_edges"] if edge[near] == pid]
            following = []
            for edge, other in found:
                if other not in seen and hop < depth:
                    seen.add(other)
                    if self._read(other):
                        following.append(other)
                if other in self.docs:
                    self.edges.setdefault(edge["edge_id"], edge)
                elif other not in self.unreachable:
                    self.truncated.setdefault(other, "depth")
            level = following

    def _read(self, pid: str) -> bool:
        """Fetch ``pid`` once, within the budget; whether its answer is at hand."""
        if pid in self.docs:
            return True
        if pid in self.unreachable or (pid in self.truncated and self.truncated[pid] != "depth"):
            return False
        left = self.deadline - self.clock()
        if self.requests >= self.max_requests or left <= 0:
            self.truncated[pid] = "max_requests" if self.requests >= self.max_requests else "deadline"
            return False
        self.requests += 1
        doc, reason = self._fetch(pid, left)
        if doc is None:
            self.unreachable[pid] = reason or "not_found"
            return False
        self.docs[pid] = doc
        self._add_nodes(doc)
        return True
