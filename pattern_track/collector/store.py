"""The node and event store: in memory, mirrored to SQLite if asked, and how one event is stored.

Nodes are keyed by ``(pattern_id, pattern_version)``; a parent resolves to the newest node
of its id, any version, as in the real service. A node keeps what the read routes answer:
its ``generation`` (0 for a creation, one more than its deepest parent for a derivation or
a merge), ``created_at`` (epoch seconds) and its incoming edges in ``parents``, each with
an ``edge_id`` and ``created_at``; ``children_of`` finds the outgoing ones. ``Store.apply`` holds the service's rules
for storing one contract-valid event (``wire-contract.md``): what a duplicate answers,
which parents become edges, and the per-event failures the database gives (parent not
found, a value too long for its column, a NUL character, which PostgreSQL cannot store).
"""

from __future__ import annotations

import copy
import json
import sqlite3
import threading
import time
from typing import Any

from .contract import (
    CREATIONS,
    MAX_LENGTHS,
    NODE_FIELDS,
    NUL_IN_JSON,
    NUL_IN_TEXT,
    Answer,
    EventFailed,
    has_nul,
    new_id,
)

__all__ = ["Store"]


class Store:
    """Nodes keyed by (pattern_id, pattern_version) and the event log; mirrored to SQLite if asked."""

    _SCHEMA = """
        CREATE TABLE IF NOT EXISTS nodes (pattern_id TEXT, pattern_version TEXT, seq INTEGER,
            body TEXT, PRIMARY KEY (pattern_id, pattern_version));
        CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT);
    """

    def __init__(self, db_path: str | None) -> None:
        self.lock = threading.RLock()  # callers hold it across a whole batch
        self.changed = threading.Condition(self.lock)  # notified on every stored event
        self._db_path = db_path
        self._db: sqlite3.Connection | None = None
        self._nodes: dict[tuple[str, str], dict] = {}
        self._newest: dict[str, dict] = {}  # pattern_id -> its newest node (parent lookup)
        self._targets: dict[str, set[tuple[str, str]]] = {}  # source pattern_id -> keys of nodes with an edge from it
        self._events: list[dict] = []
        self._seq = 0  # creation order of nodes, which decides the "newest" version

    def open(self) -> None:
        with self.lock:
            if self._db_path is None or self._db is not None:
                return
            self._db = sqlite3.connect(str(self._db_path), check_same_thread=False)
            self._db.executescript(self._SCHEMA)
            query = "SELECT body FROM {} ORDER BY seq"
            nodes = [json.loads(body) for (body,) in self._db.execute(query.format("nodes"))]
            self._events = [json.loads(body) for (body,) in self._db.execute(query.format("events"))]
            self._nodes = {(n["pattern_id"], n["pattern_version"]): n for n in nodes}
            self._newest = {n["pattern_id"]: n for n in nodes}  # ordered by seq
            self._targets = {}
            for node in nodes:
                self._index_edges(node)
            self._seq = max((n["seq"] for n in nodes), default=0)

    def close(self) -> None:
        with self.lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _write(self, sql: str, *args: Any) -> None:
        if self._db is not None:
            with self._db:
                # Values may be callables, so JSON is made only when there is a file.
                self._db.execute(sql, tuple(a() if callable(a) else a for a in args))

    def node(self, pattern_id: str, version: str) -> dict | None:
        return self._nodes.get((pattern_id, version))

    def newest(self, pattern_id: str) -> dict | None:
        """The latest node of that id, any version: how the service resolves a parent."""
        return self._newest.get(pattern_id)

    def versions(self, pattern_id: str) -> list[dict]:
        """Copies of every node of that id (all versions), oldest first."""
        with self.lock:
            found = [n for (pid, _), n in self._nodes.items() if pid == pattern_id]
            return copy.deepcopy(sorted(found, key=lambda n: n["seq"]))

    def children_of(self, pattern_id: str) -> list[dict]:
        """Copies of the nodes with an edge from a node of that id, oldest first."""
        with self.lock:
            found = [self._nodes[key] for key in self._targets.get(pattern_id, ())]
            return copy.deepcopy(sorted(found, key=lambda n: n["seq"]))

    def _index_edges(self, node: dict) -> None:
        key = (node["pattern_id"], node["pattern_version"])
        for edge in node["parents"]:
            self._targets.setdefault(edge["pattern_id"], set()).add(key)

    def put_node(self, node: dict) -> None:
        with self.lock:
            if "seq" not in node:
                self._seq += 1
                node["seq"] = self._seq
            self._nodes[(node["pattern_id"], node["pattern_version"])] = node
            self._index_edges(node)
            newest = self._newest.get(node["pattern_id"])
            if newest is None or newest["seq"] <= node["seq"]:
                self._newest[node["pattern_id"]] = node
            self._write("INSERT OR REPLACE INTO nodes VALUES (?, ?, ?, ?)",
                        node["pattern_id"], node["pattern_version"], node["seq"], lambda: json.dumps(node))

    def add_event(self, event: dict) -> None:
        with self.lock:
            self._events.append(event)
            self._write("INSERT INTO events (body) VALUES (?)", lambda: json.dumps(event))
            self.changed.notify_all()

    def sizes(self) -> tuple[int, int]:
        with self.lock:
            return len(self._nodes), len(self._events)

    def nodes(self) -> list[dict]:
        with self.lock:
            return copy.deepcopy(sorted(self._nodes.values(), key=lambda n: n["seq"]))

    def events(self) -> list[dict]:
        with self.lock:
            return copy.deepcopy(self._events)

    def clear(self) -> None:
        with self.lock:
            self._nodes, self._newest, self._targets, self._events = {}, {}, {}, []
            self._write("DELETE FROM nodes")
            self._write("DELETE FROM events")

    def apply(self, event: dict, batch_id: str | None) -> dict:
        """Store one contract-valid event (hold ``lock``); returns the answer's ``data``.

        Raises EventFailed for the service's per-event failures, Answer for a self-loop.
        """
        kind, pid, version = event["event_type"], event["pattern_id"], event["pattern_version"]
        if has_nul([pid, version]):  # the first lookup already carries them
            raise EventFailed(*NUL_IN_TEXT)
        node, edges, status = self.node(pid, version), [], "created"
        if kind in CREATIONS:  # parent_pattern_ids and edge_type are ignored
            status = "already_exists" if node else "created"
        elif kind in ("pattern_applied", "pattern_deprecated"):
            node, status = self.newest(pid), "recorded"
            if node is None:
                raise EventFailed(f"Pattern {pid} not found", "validation_error")
        elif not (node and node["parents"]):  # a resent derivation answers like the first time
            edges = self._edges(event)
        too_long = [limit for name, limit in MAX_LENGTHS.items() if len(event[name] or "") > limit]
        if too_long:
            raise EventFailed(f"value too long for type character varying({too_long[0]})",
                              "StringDataRightTruncationError")
        # The INSERTs carry the other text fields, and pattern_data as jsonb (node and event row).
        if has_nul([value for value in event.values() if isinstance(value, str)]):
            raise EventFailed(*NUL_IN_TEXT)
        if has_nul(event["pattern_data"]):
            raise EventFailed(*NUL_IN_JSON)
        if node is None:
            node = {"node_id": new_id(), "status": "active", "parents": [], "generation": 0,
                    "created_at": time.time(), **{name: event[name] for name in NODE_FIELDS}}
        if edges or kind == "pattern_deprecated" or "seq" not in node:
            for edge in edges:  # inserted after the node, as the service does
                edge["created_at"] = time.time()
            node["parents"] = node["parents"] + edges
            if node["parents"]:  # one more than the deepest parent, a merge's included
                node["generation"] = 1 + max(edge.get("source_generation", 0) for edge in node["parents"])
            node["status"] = "deprecated" if kind == "pattern_deprecated" else node["status"]
            self.put_node(node)
        self.add_event({"event_id": new_id(), "received_at": time.time(),
                        "node_id": node["node_id"], "batch_id": batch_id, **event})
        return {"pattern_id": pid, "pattern_version": node["pattern_version"], "event_type": kind,
                "node_id": node["node_id"], "status": status,
                "parent_node_ids": [edge["node_id"] for edge in node["parents"]]}

    def _edges(self, event: dict) -> list[dict]:
        """Resolve a derivation's parents (only the first of a modification) into edges."""
        merge = event["event_type"] == "pattern_merged"
        default_edge = "merged_from" if merge else "modified_from"
        transformation = "merge" if merge else (event["transformation_type"] or "refactor")
        edges = []
        for name in event["parent_pattern_ids"][:None if merge else 1]:
            if "\x00" in name:
                raise EventFailed(*NUL_IN_TEXT)
            parent = self.newest(name)
            if parent is None:
                raise EventFailed(f"Parent pattern {name} not found", "validation_error")
            version = parent["pattern_version"]
            if (name, version) == (event["pattern_id"], event["pattern_version"]):
                raise Answer(400, {"detail": f"Self-loop: {name} {version} cannot be its own parent"})
            edges.append({"edge_id": new_id(), "node_id": parent["node_id"], "pattern_id": name,
                          "pattern_version": version, "source_generation": parent.get("generation", 0),
                          "edge_type": event["edge_type"] or default_edge, "transformation_type": transformation})
        return edges
