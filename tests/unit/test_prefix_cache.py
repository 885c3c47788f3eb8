"""Prefix-aware placement: the block chain, the record of each node's cache, and the score (no I/O)."""
from __future__ import annotations

import random

import pytest

from hydra.sollol.prefix_cache import MAX_SEQUENCES, Affinity, PrefixCache
from hydra.sollol.prompt_blocks import BLOCK_CHARS, EMPTY, common_blocks, extended, prompt_blocks
from hydra.sollol.routing import route
from hydra.sollol.scoring import score_fast
from hydra.sollol.types import Placement, RoutingMode, TierEntry
from tests.unit.test_routing import CFG, CODE, info, reason_of, request, view

SEVEN = "qwen2.5-coder:7b"


def conversation(turns: int, words: int = 120, seed: int = 0) -> list[dict[str, str]]:
    rng = random.Random(seed)
    messages = [{"role": "system", "content": "You are a careful assistant."}]
    for turn in range(turns):
        messages.append({"role": "user", "content": f"question {turn} " + " ".join(
            rng.choice(["alpha", "beta", "gamma", "delta"]) for _ in range(words))})
        if turn < turns - 1:
            messages.append({"role": "assistant", "content": f"answer {turn} " + "words " * words})
    return messages


def test_prompts_share_leading_hashes_exactly_as_far_as_they_share_messages():
    first = conversation(1)
    follow = [*first, {"role": "assistant", "content": "an answer"}, {"role": "user", "content": "and then?"}]
    a, b = prompt_blocks(first), prompt_blocks(follow)
    assert b.hashes[:len(a.hashes)] == a.hashes
    assert common_blocks(b, frozenset(a.hashes)) == len(a.hashes)
    other = prompt_blocks([{**first[0], "content": "You are a terse assistant."}, *first[1:]])
    assert common_blocks(other, frozenset(a.hashes)) == 0  # a different system prompt: nothing in common
    assert a.tokens < b.tokens and a.ends == tuple(sorted(a.ends))


def test_a_long_message_is_cut_into_blocks_so_a_shared_start_is_found():
    text = "x" * (BLOCK_CHARS * 10)
    a = prompt_blocks([{"role": "user", "content": text}])
    b = prompt_blocks([{"role": "user", "content": text[:BLOCK_CHARS * 6] + "y" * (BLOCK_CHARS * 4)}])
    assert len(a.hashes) == 10
    assert common_blocks(b, frozenset(a.hashes)) == 6


def test_role_images_and_tool_calls_are_part_of_a_block():
    base = prompt_blocks([{"role": "user", "content": "hi"}])
    assert prompt_blocks([{"role": "assistant", "content": "hi"}]).hashes != base.hashes
    assert prompt_blocks([{"role": "user", "content": "hi", "images": [b"\x89PNG"]}]).hashes != base.hashes
    assert prompt_blocks([{"role": "user", "content": "hi", "tool_calls": [{"function": {"name": "f"}}]}]
                         ).hashes != base.hashes


@pytest.mark.parametrize("split", [0, 1, 3, 6])
def test_a_chain_extended_by_messages_is_the_chain_of_all_of_them(split):
    messages = [*conversation(3, words=200), {"role": "assistant", "content": "y" * (BLOCK_CHARS * 3 + 7),
                                              "images": [b"\x89PNG"], "tool_calls": [{"function": {"name": "f"}}]}]
    assert extended(prompt_blocks(messages[:split]), messages[split:]) == prompt_blocks(messages)
    assert extended(EMPTY, []) == prompt_blocks([]) == EMPTY


def record(cache: PrefixCache, node: str, messages: list[dict[str, str]], answer: str = "the answer", *,
           slots: int = 2, speed: float | None = 100.0) -> int:
    prompt = prompt_blocks(messages)
    sequence = prompt_blocks([*messages, {"role": "assistant", "content": answer}])
    count = prompt.tokens if speed else None
    ns = int(prompt.tokens / speed * 1e9) if speed else None
    return cache.evaluated(node, SEVEN, slots, prompt, sequence, count, ns)


def test_a_follow_up_finds_its_history_cached_where_it_ran_and_nowhere_else():
    cache = PrefixCache()
    turn1 = conversation(1)
    assert record(cache, "a", turn1) == 0
    turn2 = [*turn1, {"role": "assistant", "content": "the answer"}, {"role": "user", "content": "more, please"}]
    blocks = prompt_blocks(turn2)
    found = cache.lookup(blocks)
    shared = prompt_blocks([*turn1, {"role": "assistant", "content": "the answer"}]).tokens
    assert found.cached("a", SEVEN) == shared
    assert found.cached("b", SEVEN) == 0 and found.cached("a", "mistral:latest") == 0
    assert found.speeds[("a", SEVEN)] == pytest.approx(100.0, rel=0.01)
    # A prompt wholly cached still has its last token evaluated.
    assert cache.lookup(prompt_blocks(turn1)).cached("a", SEVEN) == prompt_blocks(turn1).tokens - 1


def test_a_next_turn_replaces_the_sequence_it_extends_and_other_conversations_stay():
    cache = PrefixCache()
    one, two = conversation(1, seed=1), conversation(1, seed=2)
    for messages in (one, two):
        record(cache, "a", messages, slots=1)
    # Both stay (the node's host-memory cache keeps the one its slot gave up), though a has one slot.
    assert all(cache.lookup(prompt_blocks(m)).cached("a", SEVEN) > 20 for m in (one, two))
    held = cache.held_hashes()
    two_next = [*two, {"role": "assistant", "content": "the answer"}, {"role": "user", "content": "next"}]
    record(cache, "a", two_next, slots=1)
    assert cache.lookup(prompt_blocks(two_next)).cached("a", SEVEN) > 0
    # two's old sequence was replaced by its extension, not kept beside it
    assert cache.held_hashes() == held - len(prompt_blocks([*two, {"role": "assistant", "content": "the answer"}]
                                                           ).hashes) + len(prompt_blocks(
        [*two_next, {"role": "assistant", "content": "the answer"}]).hashes)


def test_a_node_that_keeps_less_than_thought_is_learnt_from_its_misses():
    """An older Ollama keeps only its slots: two conversations taking turns on one slot each find the other
    evicted it. The record, which thought both cached, learns to keep about the one slot."""
    cache = PrefixCache()
    talks = [conversation(1, seed=s) for s in range(2)]
    for talk in talks:
        record(cache, "a", talk, slots=1, speed=100.0)
    predicted = []
    for turn in range(8):
        for i in range(2):
            follow = [*talks[i], {"role": "assistant", "content": "the answer"}, {"role": "user", "content": f"{turn}"}]
            prompt = prompt_blocks(follow)
            predicted.append(cache.lookup(prompt).cached("a", SEVEN) > prompt.tokens / 2)
            cache.evaluated("a", SEVEN, 1, prompt, prompt_blocks([*follow, {"role": "assistant", "content": "the answer"}]),
                            prompt.tokens, int(prompt.tokens / 100.0 * 1e9))  # evaluated whole: nothing was cached
            talks[i] = follow
    assert predicted[:2] == [True, True]        # it first believed the node kept both
    assert not any(predicted[-6:])              # then learnt it keeps one: no more false hopes
    snap = cache.snapshot(True)
    assert snap.hits == 0 and snap.requests == 18  # the tally counts what the node really had, not the guess


def test_prefill_speed_is_learnt_only_from_a_prompt_evaluated_whole():
    cache = PrefixCache()
    turn1 = conversation(1)
    record(cache, "a", turn1, speed=50.0)
    turn2 = [*turn1, {"role": "assistant", "content": "the answer"}, {"role": "user", "content": "go on"}]
    # A warm prompt's duration covers only its uncached tokens: a speed from it would be far too high.
    record(cache, "a", turn2, speed=5000.0)
    assert cache.lookup(prompt_blocks(turn2)).speeds[("a", SEVEN)] == pytest.approx(50.0, rel=0.01)
    snap = cache.snapshot(True)
    assert (snap.requests, snap.hits) == (2, 1)
    assert snap.cached_tokens > 0 and snap.prefill_saved_s == pytest.approx(snap.cached_tokens / 50.0, rel=0.01)
    assert snap.hit_rate == 0.5 and 0 < (snap.token_hit_rate or 0) < 1


def test_the_record_forgets_what_the_node_lost():
    cache = PrefixCache()
    turn1 = conversation(1)
    blocks = prompt_blocks(turn1)
    record(cache, "a", turn1)
    record(cache, "b", turn1)
    record(cache, "c", turn1)
    import hydra.sollol.prefix_cache as module
    old = module.POLL_GRACE_S
    module.POLL_GRACE_S = -1.0  # the records are older than the polls below
    try:
        cache.observe(view("a", loaded=(SEVEN,)))                 # still loaded: kept
        cache.observe(view("b", loaded=("mistral:latest",)))     # evicted (or the node restarted): forgotten
        cache.observe(view("c", loaded=(SEVEN,), healthy=False))  # stopped answering: forgotten
    finally:
        module.POLL_GRACE_S = old
    found = cache.lookup(blocks)
    assert (found.cached("a", SEVEN) > 0, found.cached("b", SEVEN), found.cached("c", SEVEN)) == (True, 0, 0)
    cache.forget_node("a")
    assert cache.lookup(blocks).hits == {} and cache.snapshot(True).nodes[0].node == "b"


def test_a_sequence_just_recorded_survives_a_poll_that_read_ps_before_its_load():
    cache = PrefixCache()
    record(cache, "a", conversation(1))
    cache.observe(view("a", loaded=()))
    assert cache.lookup(prompt_blocks(conversation(1))).cached("a", SEVEN) > 0


def test_the_record_holds_hashes_only_and_stays_bounded():
    cache = PrefixCache()
    secret = "zebra-7781-quartz"
    for i in range(MAX_SEQUENCES + 20):
        messages = [{"role": "user", "content": f"{secret} {i} " + "word " * 400}]
        record(cache, "a", messages, slots=4)
    assert cache.held_hashes() <= MAX_SEQUENCES * (len(prompt_blocks(messages).hashes) + 1)
    assert cache.lookup(prompt_blocks([{"role": "user", "content": f"{secret} 0 " + "word " * 400}])).hits == {}
    seen: set[int] = set()
    stack: list[object] = [cache]
    import gc
    while stack:  # every object the cache reaches: no string holds any of the prompt
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type):
            continue
        seen.add(id(obj))
        assert not (isinstance(obj, str | bytes) and ("zebra" in str(obj) or "word word" in str(obj))), obj
        stack.extend(gc.get_referents(obj))


# --- the score ---

def affinity_for(node: str, cached: int, total: int, speed: float | None = None, model: str = SEVEN) -> Affinity:
    speeds = {(node, model): speed} if speed else {}
    return Affinity(total, {(node, model): cached}, speeds)


def test_fast_sends_a_follow_up_to_the_warm_node_when_it_is_free():
    nodes = [view("a", loaded=(SEVEN,)), view("b", loaded=(SEVEN,))]
    estimates = {(n, SEVEN): (None, 9.0, None) for n in ("a", "b")}
    speeds = {("a", SEVEN): 60.0, ("b", SEVEN): 60.0}
    affinity = Affinity(1900, {("b", SEVEN): 1840}, speeds)
    out = route(request(RoutingMode.FAST, entries=(TierEntry(SEVEN),), prompt_tokens=1900, affinity=affinity),
                nodes, CFG, estimates, {})
    assert out.node == "b"
    assert "1,840 of 1,900 prompt tokens cached on b" in reason_of(out, "b")
    assert "1,840 of 1,900 prompt tokens cached on b" in out.reason
    assert "cached" not in reason_of(out, "a")
    without = route(request(RoutingMode.FAST, entries=(TierEntry(SEVEN),), prompt_tokens=1900), nodes, CFG,
                    estimates, {})
    assert without.node == "a"  # the tie goes by name: only the cache moved it


def test_fast_yields_when_the_warm_nodes_queue_would_make_it_finish_later():
    estimates = {(n, SEVEN): (None, 9.0, None) for n in ("a", "b")}
    speeds = {("a", SEVEN): 600.0, ("b", SEVEN): 600.0}
    affinity = Affinity(1900, {("b", SEVEN): 1840}, speeds)  # saves ~3 s of prefill on b
    req = request(RoutingMode.FAST, entries=(TierEntry(SEVEN),), prompt_tokens=1900, affinity=affinity, max_tokens=100)
    slightly = [view("a", loaded=(SEVEN,)), view("b", loaded=(SEVEN,), in_flight=1)]
    assert route(req, slightly, CFG, estimates, {}).node == "b"  # a busy slot is not a queue
    queued = [view("a", loaded=(SEVEN,)), view("b", loaded=(SEVEN,), in_flight=4)]  # 11 s of decodes ahead
    out = route(req, queued, CFG, estimates, {})
    assert out.node == "a" and not out.wait
    assert "busy (4/2 slots)" in reason_of(out, "b") and "cached on b" in reason_of(out, "b")


def test_fast_waits_for_the_warm_node_when_it_still_finishes_sooner():
    estimates = {(n, SEVEN): (None, 9.0, None) for n in ("a", "b")}
    speeds = {("a", SEVEN): 20.0, ("b", SEVEN): 20.0}
    affinity = Affinity(3000, {("b", SEVEN): 2950}, speeds)  # 150 s of prefill saved on b
    req = request(RoutingMode.FAST, entries=(TierEntry(SEVEN),), prompt_tokens=3000, affinity=affinity, max_tokens=100)
    out = route(req, [view("a", loaded=(SEVEN,)), view("b", loaded=(SEVEN,), in_flight=2)], CFG, estimates, {})
    assert out.wait and out.node is None and "best place b" in out.reason


def test_async_keeps_cpu_first_when_nothing_is_cached_and_takes_the_warm_cpu_node_when_something_is():
    nodes = [view("a"), view("b"), view("gpu", gpu=True, max_b=70)]
    req = request(RoutingMode.ASYNC, affinity=Affinity(1900))
    assert route(req, nodes, CFG, {}, {}).node == "a"
    warm = [view("a", loaded=(SEVEN,)), view("b", loaded=(SEVEN,)), view("gpu", gpu=True, max_b=70, loaded=(SEVEN,))]
    speeds = {(n, SEVEN): 60.0 for n in ("a", "b", "gpu")}
    assert route(request(RoutingMode.ASYNC, affinity=Affinity(1900, {("b", SEVEN): 1840}, speeds)), warm, CFG,
                 {}, {}).node == "b"


def test_reliable_still_takes_only_reliable_nodes_however_warm():
    nodes = [view("a", loaded=(SEVEN,)), view("b", loaded=(SEVEN,))]
    affinity = Affinity(1900, {("b", SEVEN): 1840}, {("b", SEVEN): 60.0})
    req = request(RoutingMode.RELIABLE, affinity=affinity)
    assert route(req, nodes, CFG, {}, {"b": (0.5, 10)}).node == "a"  # b is below the success rate
    assert route(req, nodes, CFG, {}, {}).node == "b"                # equally capable: the warm one


def test_without_a_speed_sample_the_prior_gives_the_saving():
    nodes = [view("a", loaded=(SEVEN,)), view("b", loaded=(SEVEN,))]
    estimates = {(n, SEVEN): (None, 9.0, None) for n in ("a", "b")}
    out = route(request(RoutingMode.FAST, entries=(TierEntry(SEVEN),), prompt_tokens=1900,
                        affinity=affinity_for("b", 1800, 1900)), nodes, CFG, estimates, {})
    assert out.node == "b" and "1,800 of 1,900 prompt tokens cached on b" in out.reason


@pytest.mark.parametrize("seed", range(4))
def test_fast_scores_with_affinity_are_score_fast_for_every_pair(seed):
    """The inlined fast scan and score_fast agree with a cache in play too."""
    rng = random.Random(seed)
    nodes = [view(f"n{i}", slots=rng.choice([1, 2]), in_flight=rng.choice([0, 1, 2, 3]),
                  loaded=tuple(m for m in (SEVEN, "mistral:latest") if rng.random() < 0.6)) for i in range(8)]
    estimates = {(n.name, m): (rng.choice([None, 0.4]), rng.choice([None, 9.0, 30.0]), None)
                 for n in nodes for m in (SEVEN, "mistral:latest")}
    hits = {(n.name, m): rng.randint(100, 1500) for n in nodes for m in (SEVEN, "mistral:latest") if rng.random() < 0.4}
    speeds = {(n.name, m): rng.choice([40.0, 400.0]) for n in nodes for m in (SEVEN, "mistral:latest")
              if rng.random() < 0.5}
    entries = (TierEntry(SEVEN, Placement.POWERFUL), TierEntry("mistral:latest", Placement.ANY))
    req = request(RoutingMode.FAST, entries, prompt_tokens=1600, affinity=Affinity(1600, hits, speeds))
    outcome = route(req, nodes, CFG, estimates, {})
    by_name = {n.name: n for n in nodes}
    top = max(n.capability for n in nodes)
    for c in (c for c in outcome.candidates if c.eligible):
        # Every node holds the first tier: the lower one is scored against its prior speed (fast mode's rule).
        best = min((score_fast(i, e, by_name[c.node], info(e.model), req, estimates, top, {},
                               info(SEVEN) if i > 0 else None), e.model)
                   for i, e in enumerate(entries))
        assert (c.model, c.score) == (best[1], pytest.approx(round(best[0], 4), abs=1e-4))


def test_affinity_off_routes_exactly_as_before():
    nodes = [view("a", loaded=(SEVEN,)), view("b")]
    for mode in RoutingMode:
        assert route(request(mode, CODE), nodes, CFG, {}, {}).node == route(
            request(mode, CODE, affinity=None), nodes, CFG, {}, {}).node


def test_async_sends_a_follow_up_to_its_warm_gpu_when_the_cpu_would_recompute_the_history_far_slower():
    nodes = [view("cpu", loaded=(SEVEN,)), view("gpu", gpu=True, max_b=70, loaded=(SEVEN,))]
    estimates = {("cpu", SEVEN): (None, 9.0, None), ("gpu", SEVEN): (None, 60.0, None)}
    speeds = {("cpu", SEVEN): 60.0, ("gpu", SEVEN): 1500.0}
    long_history = Affinity(4000, {("gpu", SEVEN): 3900}, speeds)   # ~65 s of prefill on the CPU node
    out = route(request(RoutingMode.ASYNC, affinity=long_history, prompt_tokens=4000), nodes, CFG, estimates, {})
    assert out.node == "gpu" and "warm cache" in out.reason and "cached on gpu" in out.reason
    short_history = Affinity(300, {("gpu", SEVEN): 250}, speeds)    # a few seconds: CPU first still
    assert route(request(RoutingMode.ASYNC, affinity=short_history, prompt_tokens=300), nodes, CFG, estimates,
                 {}).node == "cpu"
    nothing = Affinity(4000, {}, speeds)                              # nothing cached: the rule as it was
    assert route(request(RoutingMode.ASYNC, affinity=nothing, prompt_tokens=4000), nodes, CFG, estimates,
                 {}).node == "cpu"


def test_async_lets_a_follow_up_leave_its_warm_slow_node_for_a_free_one_twice_as_quick():
    """A warm CPU node beats every other CPU node, so without this rule the conversation that once
    landed there would run every turn there, slow, and set the makespan."""
    nodes = [view("cpu", loaded=(SEVEN,)), view("gpu", gpu=True, max_b=70, loaded=(SEVEN,))]
    estimates = {("cpu", SEVEN): (None, 9.0, None), ("gpu", SEVEN): (None, 60.0, None)}
    speeds = {("cpu", SEVEN): 60.0, ("gpu", SEVEN): 1500.0}
    warm_on_cpu = Affinity(4000, {("cpu", SEVEN): 3600}, speeds)  # 400 new tokens + 100 out on the CPU: ~18 s
    out = route(request(RoutingMode.ASYNC, affinity=warm_on_cpu, prompt_tokens=4000, max_tokens=100), nodes, CFG,
                estimates, {})
    assert out.node == "gpu" and "warm cache on a slow node" in out.reason
    # The GPU busy: the rule takes free nodes only; async's tail guard decides, as before (it waits).
    busy_gpu = [nodes[0], view("gpu", gpu=True, max_b=70, loaded=(SEVEN,), in_flight=2)]
    busy = route(request(RoutingMode.ASYNC, affinity=warm_on_cpu, prompt_tokens=4000, max_tokens=100), busy_gpu,
                 CFG, estimates, {})
    assert busy.wait and "slow node" not in busy.reason
    # Two CPU nodes alike: the warm one stays first (no free node is twice as quick).
    cpus = [view("a", loaded=(SEVEN,)), view("b", loaded=(SEVEN,))]
    alike = {(n, SEVEN): (None, 9.0, None) for n in ("a", "b")}
    warm_on_b = Affinity(4000, {("b", SEVEN): 3600}, {(n, SEVEN): 60.0 for n in ("a", "b")})
    assert route(request(RoutingMode.ASYNC, affinity=warm_on_b, prompt_tokens=4000, max_tokens=100), cpus, CFG,
                 alike, {}).node == "b"


def test_every_runtime_engine_setting_reaches_the_running_router():
    """A runtime setting of the engine (SOLLOL_PREFIX_AFFINITY among them) changed on the Settings page is
    applied to the running router, not only saved: the service maps each to its SollolConfig field."""
    from hydra.config import SETTINGS
    from hydra.service import _ROUTER_FIELDS
    from hydra.sollol.config import ENV_BY_NAME
    engine = {s.name: ENV_BY_NAME[s.name].field for s in SETTINGS
              if s.runtime and s.name in ENV_BY_NAME and s.name != "SOLLOL_NODES"}  # nodes: add_node/remove_node
    assert engine == {name: _ROUTER_FIELDS.get(name) for name in engine}
