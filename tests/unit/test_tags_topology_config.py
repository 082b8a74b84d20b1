"""Tag parsing, topology arithmetic and config from the environment."""

import pytest
from tokengate.node_agent.config import SchedulerConfig
from tokengate.node_agent.topology import CpuTopology, parse_cgroup_v1_quota, parse_cgroup_v2_quota
from tokengate.shared.errors import ConfigurationError, InvalidTags
from tokengate.shared.tags import ExecutionMode, StorageTier, Weight, parse_tags


def test_defaults():
    tags = parse_tags(None)
    expected = (Weight.MEDIUM, None, ExecutionMode.THREAD)
    assert (tags.weight, tags.storage, tags.execution) == expected


@pytest.mark.parametrize("raw", ["fast", "FAST", "Fast", " fast "])
def test_storage_tiers_case_insensitive(raw):
    assert parse_tags({"storage_speed": raw}).storage is StorageTier.FAST


def test_storage_caps_are_the_seeds():
    assert [tier.writer_cap for tier in StorageTier] == [10, 25, 50, 70]


def test_unknown_tier_names_valid_values():
    with pytest.raises(InvalidTags, match="SLOW, MODERATE, FAST, INSANE"):
        parse_tags({"storage_speed": "LUDICROUS"})


def test_unknown_weight_names_valid_values():
    with pytest.raises(InvalidTags, match="heavy, medium, light"):
        parse_tags({"weight": "enormous"})


def test_unknown_tag_key_refused():
    with pytest.raises(InvalidTags, match=r"unknown tag.*colour"):
        parse_tags({"colour": "blue"})


def test_non_dict_tags_refused():
    with pytest.raises(InvalidTags):
        parse_tags(["weight"])


def test_wire_round_trip():
    tags = parse_tags({"weight": "heavy", "storage_speed": "slow", "execution": "process",
                       "idempotent": False, "timeout": "2.5"})
    assert tags.to_wire()["timeout"] == 2.5
    assert parse_tags(tags.to_wire()) == tags


@pytest.mark.parametrize(("raw", "seconds"), [
    (30, 30.0), (0.25, 0.25), ("2.5", 2.5), (" 10 ", 10.0), ("1e-3", 0.001), (None, None),
])
def test_timeout_tag_accepts_seconds_above_zero(raw, seconds):
    assert parse_tags({"timeout": raw}).time_limit == seconds


@pytest.mark.parametrize("raw", [
    0, 0.0, -1, "-0.5", "0", True, False, "soon", "", "nan", float("inf"), "inf", [5], {"s": 1},
])
def test_timeout_tag_refuses_what_is_not_a_positive_number(raw):
    with pytest.raises(InvalidTags, match=r"tag 'timeout' must be a number of seconds > 0"):
        parse_tags({"timeout": raw})


def test_no_timeout_tag_means_no_limit_and_is_left_off_the_wire():
    tags = parse_tags({"weight": "light"})
    assert tags.time_limit is None
    assert "timeout" not in tags.to_wire()


@pytest.mark.parametrize(
    ("physical", "logical", "cpus", "quota", "usable", "smt"),
    [
        (8, 8, tuple(range(8)), None, 8, False),
        (4, 8, tuple(range(8)), None, 8, True),
        (2, 2, (0, 1), None, 2, False),
        (8, 16, tuple(range(16)), 2.5, 3, True),
        (8, 8, (3,), None, 1, False),
    ],
)
def test_topology(physical, logical, cpus, quota, usable, smt):
    topology = CpuTopology(physical, logical, cpus, quota)
    assert topology.usable_cores == usable
    assert topology.smt_enabled is smt
    assert topology.cpu_for_core(1) == cpus[0]


def test_recommended_workers_match_the_seed_for_8_cores():
    topology = CpuTopology(8, 8, tuple(range(8)))
    assert topology.recommended_workers() == {"light": 32, "medium": 24, "heavy": 16}


def test_cgroup_quota_parsing():
    assert parse_cgroup_v2_quota("max 100000") is None
    assert parse_cgroup_v2_quota("150000 100000") == 1.5
    assert parse_cgroup_v1_quota("-1", "100000") is None
    assert parse_cgroup_v1_quota("200000", "100000") == 2.0


def test_config_from_env():
    config = SchedulerConfig.from_env(
        {"TOKENGATE_WORKERS_PER_CORE": "2", "TOKENGATE_SUBMIT_TIMEOUT": "none",
         "TOKENGATE_PIN_THREADS": "false"}
    )
    assert (config.workers_per_core, config.submit_timeout, config.pin_threads) == (2, None, False)


def test_config_rejects_bad_values():
    with pytest.raises(ConfigurationError, match="TOKENGATE_MAILBOX_CAPACITY"):
        SchedulerConfig.from_env({"TOKENGATE_MAILBOX_CAPACITY": "lots"})
    with pytest.raises(ConfigurationError, match="workers_per_core"):
        SchedulerConfig(workers_per_core=0)
    with pytest.raises(ConfigurationError, match="backlog_capacity"):
        SchedulerConfig(backlog_capacity=-1)


def test_backlog_capacity_from_env():
    assert SchedulerConfig.from_env({"TOKENGATE_BACKLOG_CAPACITY": "7"}).backlog_capacity == 7
    assert SchedulerConfig.from_env({}).backlog_capacity is None
