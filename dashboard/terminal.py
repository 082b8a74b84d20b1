"""``tokengate top``: the dashboard's view as one terminal frame. Pure: view in, text out.

The frame is built from the same view model the web page gets (:mod:`.memory`), so the two
always agree. ``render_frame(view, width, height, color)`` fits the frame to the terminal;
with ``color`` the states are coloured with ANSI codes.
"""

from __future__ import annotations

import time
from typing import Any

STATE_COLORS = {"RUNNING": 32, "UP": 32, "completed": 32, "DRAINING": 33, "SATURATED": 33,
                "DRAINED": 36, "STUCK": 31, "DISCONNECTED": 31, "failed": 31, "killed": 31,
                "UNREACHABLE": 31}


def _paint(text: str, color: bool) -> str:
    code = STATE_COLORS.get(text.strip())
    return f"\x1b[{code}m{text}\x1b[0m" if color and code else text


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:,}" if isinstance(value, int) else str(value)


def _age(seconds: float) -> str:
    s = int(max(0, seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _header(view: dict[str, Any], color: bool) -> list[str]:
    panels = view["panels"]
    cluster, gateway = panels.get("cluster") or {}, panels.get("gateway") or {}
    state = cluster.get("state", "?") if gateway.get("ok", True) else "UNREACHABLE"
    reason = f" ({cluster['reason']})" if cluster.get("reason") else ""
    redis = cluster.get("redis") or {}
    redis_text = "ok" if redis.get("ok") else redis.get("note", "?")
    uptime = _age(view["now"] - cluster["started"]) if cluster.get("started") else "-"
    lines = [f"TokenGate  cluster {_paint(state, color)}{reason}  gateway "
             f"{gateway.get('address', '')}  uptime {uptime}  redis {redis_text}  "
             f"{time.strftime('%H:%M:%S', time.localtime(view['now']))}"]
    if "workers" in cluster:
        lines.append(f"capacity  {_num(cluster['workers'])} workers  "
                     f"{_num(cluster['physical_cores'])} physical cores on "
                     f"{_num(cluster['hosts'])} hosts  {_num(cluster['capacity'])} queue slots")
    if gateway.get("error"):
        lines.append(f"  gateway: {gateway['error']}")
    return lines


def _pool(view: dict[str, Any]) -> list[str]:
    pool = view["panels"].get("pool") or {}
    if not pool:
        return []
    waiting = pool["waiting"]
    lines = [f"tokens  created {_num(pool['created'])}  waiting {_num(waiting['heavy'])}/"
             f"{_num(waiting['medium'])}/{_num(waiting['light'])}  held {_num(pool['held'])}  "
             f"admitted {_num(pool['admitted'])}  executing {_num(pool['executing'])}  "
             f"completed {_num(pool['completed'])}  failed {_num(pool['failed'])}  "
             f"killed {_num(pool['killed'])}  requeued {_num(pool['requeued'])}  "
             f"lost {_num(pool['lost'])}"]
    series = view["streams"].get("series") or []
    if len(series) >= 2:
        point = series[-2]  # the newest complete second
        lines.append(f"rate    completed {point['completed']}/s  failed {point['failed']}/s  "
                     f"p50 {point['p50']} ms  p95 {point['p95']} ms")
    elif view["panels"]["sources"].get("series"):
        lines.append(f"rate    unavailable: {view['panels']['sources']['series']}")
    return lines


def _cores(card: dict[str, Any]) -> str:
    parts = []
    for core in card.get("cores", []):
        wpc = card.get("wpc") or core["active"]
        pattern = "#" * core["active"] + "." * max(0, wpc - core["active"])
        parts.append(f"c{core['core']}[{pattern}] q{core['queued']} x{core['executing']}")
    return " ".join(parts)


def _nodes(view: dict[str, Any], color: bool, limit: int) -> list[str]:
    nodes = view["keyed"].get("nodes", {})
    lines = [f"NODES ({len(nodes)})",
             f"  {'name':<16} {'state':<12} {'beat':>5} {'infl':>5} {'exec':>5} "
             f"{'credits h/m/l':<16} {'cpu':>5} {'mem':>7} {'tasks':>5} {'nest':>5}  cores"]
    by_host: dict[str, list[str]] = {}
    for name in sorted(nodes):
        by_host.setdefault(nodes[name].get("host", "?"), []).append(name)
    for host in sorted(by_host):
        lines.append(f" host {host}")
        for name in by_host[host]:
            lines.append(_node_line(name, nodes[name], color))
    return lines[:limit]


def _node_line(name: str, card: dict[str, Any], color: bool) -> str:
    credits = card["credits"]
    credit_text = f"{credits['heavy']}/{credits['medium']}/{credits['light']}"
    cpu = "-" if card.get("cpu") is None else f"{card['cpu']}%"
    rss = "-" if card.get("rss") is None else f"{card['rss']}M"
    beat = f"{card['age']}s" if card["age"] else "<2s"
    nested = _num(card.get("nested", {}).get("submitted", 0))  # run on the node, not in the ledger
    state = _paint(f"{card['state']:<12}", color)
    return (f"  {name:<16} {state} {beat:>5} {card['inflight']:>5} {card['executing']:>5} "
            f"{credit_text:<16} {cpu:>5} {rss:>7} {len(card['tasks']):>5} {nested:>5}  "
            f"{_cores(card)}")


def _guards(view: dict[str, Any], limit: int) -> list[str]:
    error = view["panels"]["sources"].get("guards")
    rows = view["keyed"].get("functions", {})
    house = view["panels"].get("guard_house") or {}
    mode = f"  {house['mode']}, {len(house['blocked'])} blocked" if house else ""
    lines = ["GUARD HOUSE" + (f"  unavailable: {error}" if error else mode)]
    for name in sorted(rows, key=lambda n: -rows[n]["attempts"])[:limit]:
        row = rows[name]
        rate = "-" if row["success_rate"] is None else f"{row['success_rate']}%"
        blocked = ("  BLOCKED cluster-wide" if row.get("blocked") else
                   f"  BLOCKED on {','.join(row['blocked_on'])}" if row["blocked_on"] else "")
        lines.append(f"  {name:<40} {row['attempts']:>8} {rate:>7} {row['mean_ms']:>9} ms "
                     f"{row['health']:<10}{blocked}")
    quarantine = view["keyed"].get("quarantine", {})
    if quarantine:
        lines.append(f"QUARANTINE ({len(quarantine)})")
        for qid, row in list(quarantine.items())[:limit]:
            lines.append(f"  {qid:<24} {row['node']:<12} {row['task']:<30} "
                         f"{row['deviation']}%  {row['reason']}")
    return lines


def _feed(view: dict[str, Any], color: bool, limit: int) -> list[str]:
    lines = ["RECENT EXECUTIONS (sampled, newest first)"]
    for item in list(reversed(view["streams"].get("feed", [])))[:limit]:
        ms = "-" if item["ms"] is None else f"{item['ms']}ms"
        when = time.strftime("%H:%M:%S", time.localtime(item["at"]))
        lines.append(f"  {when} {item['token_id']:<28} {item['op']:<22} {item['node']:<12} "
                     f"c{item['core']} {ms:>9} {_paint(item['state'], color)} "
                     f"{item['error_type']}")
    return lines


def _audit(view: dict[str, Any], limit: int) -> list[str]:
    error = view["panels"]["sources"].get("audit")
    lines = ["AUDIT (newest first)" + (f"  unavailable: {error}" if error else "")]
    for entry in list(reversed(view["streams"].get("audit", [])))[:limit]:
        when = time.strftime("%H:%M:%S", time.localtime(entry["at"]))
        result = "ok" if entry["ok"] else "refused"
        lines.append(f"  {when} {entry['actor']:<28} {entry['action']:<18} {entry['target']:<30} "
                     f"{result} {entry['result']}")
    return lines


def render_frame(view: dict[str, Any], width: int = 120, height: int = 50,
                 color: bool = False) -> str:
    """One frame, each line cut to ``width``, about ``height`` lines in all."""
    room = max(3, (height - 12) // 4)
    lines = [*_header(view, color), *_pool(view), "", *_nodes(view, color, room * 2 + 2), "",
             *_guards(view, room), "", *_feed(view, color, room), "", *_audit(view, room)]
    return "\n".join(_cut(line, width, color) for line in lines[:height])


def _cut(line: str, width: int, color: bool) -> str:
    if color or len(line) <= width:
        return line  # ANSI codes have no width; a coloured line may run a little long
    return line[: max(1, width - 1)] + "~"
