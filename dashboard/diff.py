"""What changed between two views, as a patch small enough to push every second. Pure.

A view (see :mod:`tokengate.dashboard.memory`) has three kinds of parts, each diffed its own
way:

- ``panels``: small dicts, sent whole when they differ;
- ``keyed``: collections of records by key (node cards, Guard House rows, quarantined
  calls): only the fields that changed of the records that changed, and the keys removed;
- ``streams``: append-only lists (chart points, feed, audit) with a key per item: only the
  items that are new, or whose value changed (the newest chart second may still grow).

``diff(old, new)`` gives the patch, ``apply(view, patch)`` rebuilds ``new`` from ``old``;
``apply(old, diff(old, new)) == new`` for every pair (the unit tests check it). The page does
the same as ``apply`` in JavaScript.
"""

from __future__ import annotations

import copy
from typing import Any

from tokengate.dashboard.memory import STREAM_KEYS, merge_stream


def _keyed(old: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]]) -> dict[str, Any]:
    changed: dict[str, dict[str, Any]] = {}
    for key, record in new.items():
        before = old.get(key)
        if before is None:
            changed[key] = record
            continue
        fields = {f: v for f, v in record.items() if before.get(f, _MISSING) != v}
        gone = [f for f in before if f not in record]
        if gone:
            fields["__del__"] = gone
        if fields:
            changed[key] = fields
    removed = [key for key in old if key not in new]
    patch: dict[str, Any] = {}
    if changed:
        patch["set"] = changed
    if removed:
        patch["del"] = removed
    return patch


def _stream(old: list[dict[str, Any]], new: list[dict[str, Any]], key: str) -> list[Any]:
    before = {item[key]: item for item in old}
    return [item for item in new if before.get(item[key]) != item]


_MISSING = object()


def diff(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """The patch that turns ``old`` into ``new`` (everything, when ``old`` is None)."""
    old = old or {"panels": {}, "keyed": {}, "streams": {}}
    patch: dict[str, Any] = {"now": new["now"]}
    panels = {name: value for name, value in new["panels"].items()
              if old["panels"].get(name, _MISSING) != value}
    if panels:
        patch["panels"] = panels
    keyed = {name: _keyed(old["keyed"][name], records) if name in old["keyed"]
             else {"set": records} for name, records in new["keyed"].items()}
    keyed = {name: part for name, part in keyed.items() if part}
    if keyed:
        patch["keyed"] = keyed
    streams = {name: _stream(old["streams"][name], items, STREAM_KEYS[name])
               if name in old["streams"] else items for name, items in new["streams"].items()}
    streams = {name: items for name, items in streams.items()
               if items or name not in old["streams"]}
    if streams:
        patch["streams"] = streams
    return patch


def _apply_keyed(records: dict[str, dict[str, Any]], part: dict[str, Any]) -> None:
    for key in part.get("del", []):
        records.pop(key, None)
    for key, fields in part.get("set", {}).items():
        record = records.setdefault(key, {})
        for name in fields.get("__del__", []):
            record.pop(name, None)
        record.update({f: v for f, v in fields.items() if f != "__del__"})


def apply(view: dict[str, Any] | None, patch: dict[str, Any]) -> dict[str, Any]:
    """``view`` with ``patch`` applied (a new dict; ``view`` is left as it was)."""
    result = copy.deepcopy(view) if view else {"panels": {}, "keyed": {}, "streams": {}}
    result["now"] = patch["now"]
    result["panels"].update(copy.deepcopy(patch.get("panels", {})))
    for name, part in patch.get("keyed", {}).items():
        _apply_keyed(result["keyed"].setdefault(name, {}), copy.deepcopy(part))
    for name, added in patch.get("streams", {}).items():
        result["streams"][name] = merge_stream(name, result["streams"].get(name, []),
                                               copy.deepcopy(added))
    return result
