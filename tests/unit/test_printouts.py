"""The seed's printouts from the package: the Guard House report's classes, the start-up banner,
and the cluster history document (pure parts; the cluster test runs them for real)."""

from __future__ import annotations

import json

import msgpack
import pytest
from tokengate.node_agent.banner import BannerFacts, banner_lines
from tokengate.shared.errors import HistoryUnreadable
from tokengate.shared.rpc import tokengate_pb2 as pb

from tokengate.cluster_history import build_document, missing_nodes, write_document
from tokengate.guard_report import FunctionRow, cluster_report, report_lines, snapshot_report


def _row(name: str, successes: int, attempts: int, blocked: tuple[str, ...] = ()) -> FunctionRow:
    return FunctionRow(name, attempts, successes, attempts - successes, 0.01, blocked)


def _section(lines: list[str], heading: str) -> list[str]:
    """The function lines under ``heading`` (up to the next blank line)."""
    start = lines.index(heading) + 2
    end = lines.index("", start) if "" in lines[start:] else len(lines)
    return [line.split()[0] for line in lines[start:end]]


def test_report_puts_each_function_in_the_seeds_class_by_success_rate():
    rows = [_row("m:perfect", 100, 100), _row("m:edge95", 95, 100), _row("m:good", 81, 100),
            _row("m:edge80", 80, 100), _row("m:fair", 51, 100), _row("m:half", 50, 100),
            _row("m:bad", 1, 10, ("a2",)), _row("m:idle", 0, 0)]
    lines = report_lines(rows, scope="test", mode="passive")
    assert _section(lines, "EXCELLENT PERFORMERS (>95% success):") == ["perfect"]
    assert _section(lines, "GOOD PERFORMERS (>80% success):") == ["edge95", "good"]
    assert _section(lines, "FAIR PERFORMERS (>50% success):") == ["edge80", "fair"]
    assert _section(lines, "POOR PERFORMERS (<=50% success):") == ["half", "bad"]
    assert _section(lines, "NOT YET FINISHED (no attempt finished):") == ["idle"]
    assert "Functions tracked: 8   Executions: 610   Failures: 152" in lines
    assert "Blocked: m:bad" in lines
    assert any(line.startswith("bad ") and "Rate: 10.0% (1/10)" in line
               and line.endswith("BLOCKED on a2") for line in lines)


def test_report_names_functions_in_full_only_when_short_names_clash():
    lines = report_lines([_row("a:run", 5, 5), _row("b:run", 5, 5), _row("b:other", 5, 5)],
                         scope="test", mode="passive")
    assert _section(lines, "EXCELLENT PERFORMERS (>95% success):") == ["a:run", "other", "b:run"]


def test_cluster_report_sums_nodes_and_says_the_mode():
    reply = pb.GuardsReply(functions=[
        pb.FunctionHealth(name="t:ok", attempts=40, successes=40, mean_time=0.002),
        pb.FunctionHealth(name="t:flaky", attempts=10, successes=7, failures=3,
                          health="poor")])
    text = cluster_report(reply, {"a1": "passive", "a2": "passive"})
    assert "GUARD HOUSE REPORT (cluster, 2 nodes)" in text
    assert "Mode: passive on every node" in text
    lines = text.splitlines()  # the class follows the summed counts (70%), not a node's
    assert _section(lines, "FAIR PERFORMERS (>50% success):") == ["flaky"]
    assert "mixed: a1 auto-block, a2 passive" in cluster_report(
        reply, {"a2": "passive", "a1": "auto-block"})
    assert snapshot_report({}).endswith("No function has run yet.")


def test_banner_shows_topology_workers_budget_mode_chains_and_core_map():
    facts = BannerFacts(
        node="n1", topology={"physical_cores": 8, "logical_cores": 8, "smt_enabled": False,
                             "smt_ratio": 1.0, "usable_cores": 8, "allowed_cpus": list(range(8)),
                             "recommended_workers": {"light": 32, "medium": 24, "heavy": 16}},
        cores=8, workers_per_core=4, mailbox_capacity=120,
        chains={"heavy": tuple(range(1, 9)), "medium": tuple(range(2, 9)),
                "light": tuple(range(3, 9))},
        overflow_budget_bytes=75 * 2**20, auto_block=False, failure_threshold=0.5,
        min_attempts=10)
    lines = banner_lines(facts)
    for expected in ("  Physical cores: 8", "  Light workload (I/O bound): 32",
                     "  Heavy workload (CPU bound): 16", "Overflow guard budget: 75 MB",
                     "Guard House: passive monitoring (auto-blocking DISABLED, observation only)",
                     "  Heavy: [1, 2, 3, 4, 5, 6, 7, 8] (preferred: 1)",
                     "  Light: [3, 4, 5, 6, 7, 8] (preferred: 3)",
                     "Core-pinned mailboxes: 8 cores x 4 workers = 32 workers, 120 tokens each",
                     "  Core 1: Workers [0, 1, 2, 3]", "  Core 8: Workers [28, 29, 30, 31]"):
        assert expected in lines


def _node(name: str, rows: list[dict] | None, message: str = "") -> pb.NodeHistory:
    if rows is None:
        return pb.NodeHistory(node=name, message=message)
    return pb.NodeHistory(node=name, answered=True, total_recorded=len(rows), capacity=1000,
                          records=msgpack.packb(rows))


def test_history_document_merges_gateways_orders_records_and_lists_silent_nodes(tmp_path):
    first = pb.HistoryReply(nodes=[_node("a1", [{"token_id": "x", "finished_at": 2.0}]),
                                   _node("a2", None, "no answer within 10s")])
    second = pb.HistoryReply(nodes=[_node("a1", [{"token_id": "x", "finished_at": 2.0}]),
                                    _node("a3", [{"token_id": "y", "finished_at": 1.0}])])
    document = build_document([first, second])
    assert [r["token_id"] for r in document["records"]] == ["y", "x"]  # a1 counted once
    assert missing_nodes(document) == ["a2"] and document["count"] == 2
    path = write_document(document, tmp_path / "dumps")
    again = write_document(document, tmp_path / "dumps")
    assert path != again and json.loads(path.read_text())["records"] == document["records"]
    with pytest.raises(HistoryUnreadable):
        build_document([pb.HistoryReply(nodes=[pb.NodeHistory(node="a", answered=True,
                                                              records=b"\xc1")])])
