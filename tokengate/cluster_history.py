"""The cluster's execution history as one JSON document (``tokengate history --out DIR``).

Each agent keeps a ring buffer of its finished attempts (:mod:`tokengate.node_agent.guards.
history`); the gateway's ``History`` RPC gathers them. This module turns one or more
``HistoryReply`` (one per gateway asked) into the document, and writes it. The records keep the
seed's fields (token_id, operation_type, success, execution_time, core_id, worker_id,
complexity_score) plus node and attempt, oldest first by the time they finished.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgpack

from tokengate.shared.errors import HistoryUnreadable
from tokengate.shared.rpc import tokengate_pb2 as pb

FILE_PREFIX = "cluster_history"


def node_records(node: pb.NodeHistory) -> list[dict[str, Any]]:
    """The records one agent sent (none when it did not answer)."""
    if not node.answered:
        return []
    try:
        rows = msgpack.unpackb(node.records, raw=False)
    except (ValueError, msgpack.UnpackException) as exc:
        raise HistoryUnreadable(f"agent {node.node}: unreadable history records: {exc}") from None
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise HistoryUnreadable(f"agent {node.node}: history records are not a list of maps")
    return rows


def build_document(replies: Iterable[pb.HistoryReply]) -> dict[str, Any]:
    """One document from the replies of every gateway asked (a node seen twice counts once)."""
    nodes: dict[str, dict[str, Any]] = {}
    records: list[dict[str, Any]] = []
    for reply in replies:
        for node in reply.nodes:
            if nodes.get(node.node, {}).get("answered"):
                continue
            rows = node_records(node)
            nodes[node.node] = {"node": node.node, "answered": node.answered,
                                "message": node.message, "count": len(rows),
                                "total_recorded": node.total_recorded,
                                "capacity": node.capacity}
            records += rows
    records.sort(key=lambda row: (row.get("finished_at") or 0.0, row.get("node", "")))
    return {"generated_at": time.time(), "nodes": [nodes[name] for name in sorted(nodes)],
            "count": len(records), "records": records}


def missing_nodes(document: dict[str, Any]) -> list[str]:
    return [node["node"] for node in document["nodes"] if not node["answered"]]


def write_document(document: dict[str, Any], directory: str | os.PathLike[str]) -> Path:
    """Write it as ``<directory>/cluster_history_<UTC time>.json`` (never over another)."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d_%H%M%S", time.gmtime(document["generated_at"]))
    target = folder / f"{FILE_PREFIX}_{stamp}.json"
    serial = 1
    while target.exists():
        serial += 1
        target = folder / f"{FILE_PREFIX}_{stamp}_{serial}.json"
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(json.dumps(document, indent=2), encoding="utf-8")
    os.replace(tmp, target)
    return target
