"""The pure policy of placement by need: labels, matching, queue names, stranded queues."""

from __future__ import annotations

import pytest
from tokengate.gateway import needs
from tokengate.gateway.needs import Need, Offer
from tokengate.shared import labels
from tokengate.shared.errors import InvalidTags
from tokengate.shared.tags import Weight, parse_tags

GPU = Offer(frozenset({"m:f", "m:g"}), {"gpu": "a100", "zone": "eu"})
PLAIN = Offer(frozenset({"m:f"}), {})
BARE = Offer(frozenset(), {})  # registered no tasks: runs whatever it is sent


@pytest.mark.parametrize(("need", "gpu", "plain", "bare"), [
    (Need("m:f"), True, True, True),
    (Need("m:g"), True, False, True),
    (Need("m:h"), False, False, True),
    (Need("m:f", (("gpu", "a100"),)), True, False, False),
    (Need("m:f", (("gpu", "a100"), ("zone", "eu"))), True, False, False),
    (Need("m:f", (("gpu", "h100"),)), False, False, False),
    (Need("m:f", (("zone", ""),)), False, False, False),
    (Need(), True, True, True),
])
def test_an_agent_serves_a_need_with_the_task_and_every_label(need, gpu, plain, bare):
    assert (needs.serves(GPU, need), needs.serves(PLAIN, need), needs.serves(BARE, need)) \
        == (gpu, plain, bare)


def test_the_tasks_own_labels_win_over_what_a_call_asks():
    need = needs.need_of("m:f", (("gpu", "t4"), ("zone", "eu")), (("gpu", "a100"),))
    assert need == Need("m:f", (("gpu", "a100"), ("zone", "eu")))


@pytest.mark.parametrize("need", [Need(), Need("m:f"), Need("a.b:C.run", (("gpu", "a100"),)),
                                  Need("m:f", (("k/x", "1"), ("zone", "")))])
def test_queue_names_round_trip(need):
    name = needs.queue_name(Weight.HEAVY, need)
    assert needs.parse_queue(name) == (Weight.HEAVY, need)
    assert needs.weight_of(name) is Weight.HEAVY
    assert (name == "heavy") == (need == Need()), "only the empty need keeps the bare name"


def test_stranded_queues_are_those_with_tokens_and_no_agent():
    gpu_q = needs.queue_name(Weight.LIGHT, Need("m:f", (("gpu", "h100"),)))
    idle_q = needs.queue_name(Weight.LIGHT, Need("m:x"))
    waiting = {"light": 3, needs.queue_name(Weight.LIGHT, Need("m:g")): 2, gpu_q: 1, idle_q: 0}
    assert needs.stranded(waiting, [PLAIN]) == ["light|m:g|", gpu_q]
    assert needs.stranded(waiting, [PLAIN, GPU]) == [gpu_q]
    assert needs.stranded(waiting, []) == ["light", "light|m:g|", gpu_q]
    message = needs.timeout_message(needs.parse_queue(gpu_q)[1], 60)
    assert "task m:f with labels gpu=h100" in message and "--label gpu=h100" in message


@pytest.mark.parametrize(("texts", "error"), [
    (["gpu"], "must be key=value"), (["=a100"], "key '' is not valid"),
    (["gpu=a 100"], "value is not valid"), (["gpu=a100", "gpu=h100"], "given twice"),
    ([f"k{i}=v" for i in range(17)], "at most 16"), (["gpu|x=1"], "key 'gpu|x' is not valid"),
])
def test_bad_labels_are_refused_naming_the_shape(texts, error):
    with pytest.raises(InvalidTags, match=error):
        labels.parse(texts)


def test_labels_are_canonical_and_the_requires_tag_is_checked_at_decoration():
    assert labels.parse(["zone=eu", "gpu=a100", "gpu=a100"]) == (("gpu", "a100"), ("zone", "eu"))
    assert parse_tags({"requires": {"zone": "eu", "gpu": "a100"}}).requires == \
        (("gpu", "a100"), ("zone", "eu"))
    assert parse_tags({"requires": {}}).requires == ()
    for bad in ("gpu=a100", ["gpu"], {"gpu": 100}, {"": "x"}):
        with pytest.raises(InvalidTags, match="requires"):
            parse_tags({"requires": bad})
