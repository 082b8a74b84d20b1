"""Guards at admission, with real worker threads: Guard House, spikes and the quarantine."""

import json
import runpy
import zlib
from pathlib import Path

import guard_tasks as tasks
import pytest
from tokengate.shared.errors import MethodBlockedException, TokenQuarantined

from tokengate.cli import main as cli_main

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _fresh_state():
    tasks.reset()
    yield
    tasks.reset()


coordinator = tasks.guarded_coordinator


def _fail_n(fn, n):
    for i in range(n):
        with pytest.raises(ValueError):
            fn(i).get(timeout=10)


def test_auto_block_refuses_a_failing_function_until_reenabled(tmp_path):
    with coordinator(tmp_path, auto_block=True, min_attempts=4, failure_threshold=0.5) as coord:
        tasks.broken.set()
        _fail_n(tasks.toggle, 4)
        with pytest.raises(MethodBlockedException) as refused:
            tasks.toggle(99)
        message = str(refused.value)
        assert "guard_tasks:toggle" in message and "100.0%" in message
        assert "4/4 attempts" in message and "reenable(" in message
        assert tasks.odd_fails(2).get(timeout=10) == 2   # other functions still run
        status = coord.status()["guard_house"]
        assert status["blocked"] == ["guard_tasks:toggle"] and status["refusals"] == 1
        assert status["methods"]["guard_tasks:toggle"]["health"] == "poor"

        tasks.broken.clear()
        assert coord.reenable(tasks.toggle) is True
        assert tasks.toggle(21).get(timeout=10) == 42
        assert coord.status()["guard_house"]["blocked"] == []


def test_passive_mode_changes_nothing(tmp_path):
    # Thresholds that auto-block would trip at once; passive mode must still run every call.
    with coordinator(tmp_path, auto_block=False, min_attempts=2, failure_threshold=0.1) as coord:
        tokens = [tasks.odd_fails(i) for i in range(60)]
        outcomes = []
        for i, token in enumerate(tokens):
            if i % 2:
                with pytest.raises(ValueError, match=f"odd {i}"):
                    token.get(timeout=10)
                outcomes.append("failed")
            else:
                assert token.get(timeout=10) == i
                outcomes.append("completed")
        assert coord.wait_idle(10)
        status = coord.status()
    assert outcomes.count("failed") == 30
    pool = status["token_pool"]
    assert (pool["created"], pool["completed"], pool["failed"]) == (60, 30, 30)
    house = status["guard_house"]
    assert house["mode"] == "passive" and house["blocked"] == [] and house["refusals"] == 0
    method = house["methods"]["guard_tasks:odd_fails"]
    assert method["over_threshold"] is True and method["failure_rate"] == 50.0
    assert (method["attempts"], method["failures"]) == (60, 30)


def _warm_then_spike(coord):
    for i in range(5):
        assert isinstance(tasks.checksum(b"x" * 10, salt=i).get(timeout=10), int)
    big = bytes(range(256)) * 4096  # 1 MiB: its predicted cost is far above the history
    return big, tasks.checksum(big, salt=7)


def test_spike_is_quarantined_on_disk_and_replays_to_the_right_result(tmp_path):
    with coordinator(tmp_path, spike_warmup=5, spike_threshold=2.0) as coord:
        big, token = _warm_then_spike(coord)
        with pytest.raises(TokenQuarantined) as quarantined:
            token.get(timeout=10)
        path = tmp_path / "quarantine" / f"{token.token_id}.json"
        assert str(path) in str(quarantined.value)
        record = json.loads(path.read_text())
        assert record["task"] == "guard_tasks:checksum" and record["replayable"] is True
        assert record["deviation_percent"] > 200.0
        assert record["args_summary"][0].startswith("bytes[1048576]")
        assert record["kwargs_summary"] == {"salt": "int 7"}
        assert coord.status()["quarantine"]["on_disk"] == 1

        replay = coord.replay_quarantined(token.token_id)
        expected = tasks.checksum.__wrapped__(big, salt=7)
        assert replay.get(timeout=10) == expected
        assert replay.token_id != token.token_id
        assert coord.wait_idle(10)
    assert not path.exists()  # dropped after the successful replay


def test_spike_detection_off_by_default_runs_everything(tmp_path):
    with coordinator(tmp_path, spike_detection=False) as coord:
        # checksum opts in with spike_check=True, so use a function that does not.
        tokens = [tasks.odd_fails(2) for _ in range(5)] + [tasks.odd_fails(10**12)]
        assert [t.get(timeout=10) for t in tokens][-1] == 10**12
        assert coord.status()["quarantine"]["on_disk"] == 0


def test_quarantine_cli_list_show_replay_drop(tmp_path, capsys):
    qdir = str(tmp_path / "quarantine")
    with coordinator(tmp_path, spike_warmup=5, spike_threshold=2.0) as coord:
        ids = []
        for _ in range(2):
            _, token = _warm_then_spike(coord)
            with pytest.raises(TokenQuarantined):
                token.get(timeout=10)
            ids.append(token.token_id)
    capsys.readouterr()

    assert cli_main(["quarantine", "list", "--dir", qdir]) == 0
    listing = capsys.readouterr().out
    assert "2 quarantined call(s)" in listing and all(qid in listing for qid in ids)

    assert cli_main(["quarantine", "show", ids[0], "--dir", qdir]) == 0
    shown = capsys.readouterr().out
    assert "guard_tasks:checksum" in shown and "bytes[1048576]" in shown

    # Replay imports only included modules: refused without --include.
    assert cli_main(["quarantine", "replay", ids[0], "--dir", qdir]) == 2
    assert "--include guard_tasks" in capsys.readouterr().err
    assert cli_main(["quarantine", "replay", ids[0], "--dir", qdir,
                     "--include", "guard_tasks"]) == 0
    replayed = capsys.readouterr().out
    expected = tasks.checksum.__wrapped__(bytes(range(256)) * 4096, salt=7)
    assert f": {expected}" in replayed

    assert cli_main(["quarantine", "drop", ids[1], "--dir", qdir]) == 0
    capsys.readouterr()
    assert cli_main(["quarantine", "list", "--dir", qdir, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_guards_tour_example_runs(capsys):
    root = Path(__file__).resolve().parents[2]
    tour = runpy.run_path(str(root / "examples" / "guards_tour.py"), run_name="guards_tour")
    tour["main"]()
    out = capsys.readouterr().out
    assert "refused at submit: Method 'guards_tour:parse_record' is auto-blocked" in out
    assert "after re-enable: {'f': 6}" in out
    assert "quarantined:" in out and f"replayed: {zlib.crc32(bytes(1_000_000))}" in out
    assert "ok after 3 attempts" in out and "attempt 3)" in out
    assert 'tokengate_guard_house_refusals_total{operation="parse_record"} 1.0' in out
