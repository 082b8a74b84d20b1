"""The shared-storage bookkeeping, pure: declarations, caps (the smallest wins), slots held
by token id at placement or claim, and every way a slot comes back."""

from __future__ import annotations

import pytest
from tokengate.gateway.storage import Declared, SharedStorage, caps, parse
from tokengate.shared.errors import InvalidTags
from tokengate.shared.tags import StorageTier


@pytest.mark.parametrize(("text", "expected"), [
    ("", None),
    ("nas1=SLOW", Declared("nas1", StorageTier.SLOW)),
    (" nas1 = moderate ", Declared("nas1", StorageTier.MODERATE)),
])
def test_parse(text, expected):
    assert parse(text) == expected


@pytest.mark.parametrize("text", ["nas1", "=SLOW", "nas1=TURBO", "a b=SLOW", "a,b=FAST"])
def test_parse_refuses_bad_declarations_naming_the_tiers(text):
    with pytest.raises(InvalidTags, match="SLOW, MODERATE, FAST, INSANE"):
        parse(text)


def test_the_smallest_declared_cap_wins():
    declared = [parse("nas1=FAST"), parse("nas1=SLOW"), parse("nas2=INSANE")]
    assert caps(d for d in declared if d) == {"nas1": 10, "nas2": 70}


def storage(*agents: tuple[str, str]) -> SharedStorage:
    shared = SharedStorage()
    for agent, text in agents:
        shared.joined(agent, parse(text), ["m:write"])
    return shared


def test_only_declaring_agents_and_tagged_tasks_count():
    shared = storage(("a", "nas1=SLOW"), ("b", ""))
    assert shared.active
    assert shared.storage_for("a", "m:write") == "nas1"
    assert shared.storage_for("a", "m:other") is None, "a task with no storage_speed tag"
    assert shared.storage_for("b", "m:write") is None, "an agent on its own disk"
    assert not SharedStorage().active


def test_slots_are_held_by_id_and_released_once():
    shared = storage(("a", "nas1=SLOW"), ("b", "nas1=SLOW"))
    for i in range(10):
        assert shared.take(f"t{i}", "nas1", "ab"[i % 2])
    assert shared.room("nas1") == 0
    assert not shared.take("t0", "nas1", "a"), "taken again: still one slot"
    assert shared.release(["t0", "t0", "unknown"]) == 1
    assert shared.room("nas1") == 1


def test_reservations_keep_placement_out_while_a_claim_is_in_flight():
    shared = storage(("a", "nas1=SLOW"))
    shared.reserve("nas1", 8)
    assert shared.room("nas1") == 2
    shared.unreserve("nas1", 8)
    assert shared.room("nas1") == 10


def test_a_placed_token_not_sent_gives_its_slot_back_a_sent_one_keeps_it():
    shared = storage(("a", "nas1=SLOW"))
    shared.take("sent", "nas1", "a", placed=True)
    shared.take("queued", "nas1", "a", placed=True)
    shared.take("running", "nas1", "a")  # claimed earlier, not placed now
    shared.sent(["sent"])
    assert shared.unplace(["sent", "queued", "running"]) == 1
    assert shared.out() == {"nas1": 2}
    assert not shared.placing


def test_a_lost_agent_frees_its_slots_and_a_rejoin_keeps_only_what_it_holds():
    shared = storage(("a", "nas1=SLOW"), ("b", "nas1=SLOW"))
    shared.take("a1", "nas1", "a")
    shared.take("a2", "nas1", "a")
    shared.take("b1", "nas1", "b")
    shared.joined("a", parse("nas1=SLOW"), ["m:write"], held=["a2"])
    assert shared.out() == {"nas1": 2}, "a1 was taken back by the ledger at the rejoin"
    assert shared.lost("b") == 1
    assert shared.out() == {"nas1": 1}


def test_a_cap_follows_the_agents_that_declare_it():
    shared = storage(("a", "nas1=MODERATE"), ("b", "nas1=SLOW"))
    assert shared.caps() == {"nas1": 10}
    shared.left("b")
    assert shared.caps() == {"nas1": 25}
    shared.left("a")
    assert not shared.active
