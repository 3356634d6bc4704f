"""The read routes' answers over a ``Store``, in the real service's shapes.

- ``evolution``: ``GET /lineage/{pattern_id}/evolution``, one hop: every node of the id
  (all versions, by generation then creation) and every edge that starts or ends at one
  of them (by creation). ``metadata`` of nodes and edges is a JSON *string*, times are
  ISO 8601 with an offset, as asyncpg's rows give them.
- ``descendants``: ``GET /lineage/{pattern_id}?query_type=descendants``: the direct
  children of the id's newest node, newest first (the service's
  ``get_pattern_descendants``).
- ``ancestry``: the default ``query_type``, broken on the real service: a 500 for any
  stored pattern.

A pattern with no node is the route's own 404. The database's condition (the fault
modes ``degraded``, ``db_down``) is the caller's to check first (``service``).
"""

from __future__ import annotations

import datetime
import time
from typing import NoReturn

from .contract import Answer
from .store import Store

__all__ = ["ANCESTRY_ERROR", "ancestry", "descendants", "evolution", "iso"]

#: What the real service answers to any ancestry query of a stored pattern.
ANCESTRY_ERROR = ('invalid value for parameter "statement_timeout"', "InvalidParameterValueError")
_NO_METADATA = "{}"  # asyncpg hands jsonb over as text


def iso(epoch_s: float) -> str:
    """``1700000000.0`` -> ``"2023-11-14T22:13:20+00:00"`` (microseconds when there are any)."""
    return datetime.datetime.fromtimestamp(epoch_s, datetime.timezone.utc).isoformat()


def _meta(started: float) -> dict:
    return {"processing_time_ms": round((time.perf_counter() - started) * 1000, 2)}


def _edge(edge: dict, target: dict) -> dict:
    """One stored edge (an entry of ``target["parents"]``) in the service's shape."""
    return {"edge_id": edge.get("edge_id") or f"{edge['node_id']}-{target['node_id']}",
            "source_node_id": edge["node_id"], "target_node_id": target["node_id"],
            "source_pattern_id": edge["pattern_id"], "target_pattern_id": target["pattern_id"],
            "source_version": edge["pattern_version"], "target_version": target["pattern_version"],
            "edge_type": edge["edge_type"], "transformation_type": edge["transformation_type"],
            "edge_weight": 1.0, "created_at": iso(edge.get("created_at", target["created_at"])),
            "metadata": _NO_METADATA}


def _not_found(pattern_id: str) -> NoReturn:
    """The evolution route's 404: nothing stored for that id."""
    raise Answer(404, {"success": False, "error": f"Pattern not found: {pattern_id}", "pattern_id": pattern_id})


def evolution(store: Store, pattern_id: str) -> dict:
    """The whole 200 answer of the evolution route; raises ``Answer`` 404 for an unknown id."""
    started = time.perf_counter()
    with store.lock:  # one consistent view of nodes and edges
        nodes = store.versions(pattern_id)
        if not nodes:
            _not_found(pattern_id)
        edges: dict[str, tuple[float, dict]] = {}
        pairs = [(edge, node) for node in nodes for edge in node["parents"]]
        pairs += [(edge, child) for child in store.children_of(pattern_id) for edge in child["parents"]
                  if edge["pattern_id"] == pattern_id]
        for edge, target in pairs:
            shaped = _edge(edge, target)
            edges[shaped["edge_id"]] = (edge.get("created_at", target["created_at"]), shaped)
    nodes.sort(key=lambda n: (n.get("generation", 0), n["created_at"]))
    data = {"pattern_id": pattern_id, "total_versions": len(nodes),
            "evolution_nodes": [{"node_id": n["node_id"], "pattern_id": n["pattern_id"],
                                 "pattern_name": n["pattern_name"], "pattern_type": n["pattern_type"],
                                 "version": n["pattern_version"], "generation": n.get("generation", 0),
                                 "created_at": iso(n["created_at"]), "metadata": _NO_METADATA} for n in nodes],
            "evolution_edges": [shaped for _, shaped in sorted(edges.values(), key=lambda pair: pair[0])]}
    return {"success": True, "data": data,
            "metadata": {**_meta(started), "total_nodes": len(nodes), "total_edges": len(edges)}}


def descendants(store: Store, pattern_id: str) -> dict:
    """The 200 answer of ``query_type=descendants``; raises ``Answer`` 404 for an unknown id."""
    started = time.perf_counter()
    with store.lock:
        newest = store.newest(pattern_id)
        if newest is None:
            _lineage_not_found(pattern_id, started)
        found = [(child["created_at"], child, edge) for child in store.children_of(pattern_id)
                 for edge in child["parents"] if edge["node_id"] == newest["node_id"]]
    found.sort(key=lambda row: row[0], reverse=True)
    rows = [{"descendant_id": child["node_id"], "descendant_pattern_id": child["pattern_id"],
             "edge_type": edge["edge_type"], "transformation_type": edge["transformation_type"],
             "created_at": iso(child["created_at"])} for _, child, edge in found]
    return {"success": True,
            "data": {"pattern_id": pattern_id, "pattern_node_id": newest["node_id"], "descendants": rows,
                     "total_descendants": len(rows)},
            "metadata": {**_meta(started), "query_type": "descendants"}}


def ancestry(store: Store, pattern_id: str) -> NoReturn:
    """The default query: 404 for an unknown id, else the real service's 500 (always raises ``Answer``)."""
    started = time.perf_counter()
    if store.newest(pattern_id) is None:
        _lineage_not_found(pattern_id, started)
    error, error_type = ANCESTRY_ERROR
    raise Answer(500, {"success": False, "error": error, "metadata": {"error_type": error_type},
                       "processing_time_ms": _meta(started)["processing_time_ms"]})


def _lineage_not_found(pattern_id: str, started: float) -> NoReturn:
    """The query route's 404: the tracker's error result, not the evolution route's shape."""
    raise Answer(404, {"success": False, "error": f"Pattern not found: {pattern_id}",
                       "metadata": {"error_type": "validation_error"},
                       "processing_time_ms": _meta(started)["processing_time_ms"]})
