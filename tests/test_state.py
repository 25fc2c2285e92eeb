"""The caller-owned state: copies are independent, prefix states resume exactly, budgets are enforced."""

from __future__ import annotations

import numpy as np
import pytest

import edgekit
from edgekit.errors import EdgekitError


def test_fork_branches_match_cold_runs(fp32_bundle):
    model = edgekit.load(fp32_bundle)
    prefix = list(range(1000, 1040))
    branches = [[5, 6, 7], [42], [9, 9, 9, 9]]
    shared = model.new_state()
    model.prefill(shared, prefix)
    before = {name: arr.copy() for name, arr in shared.state.items()}
    for branch in branches:
        forked = shared.fork()
        warm = model.prefill(forked, branch)
        cold_state = model.new_state()
        cold = model.prefill(cold_state, prefix + branch)
        np.testing.assert_allclose(warm, cold, atol=1e-5)
    assert shared.length == len(prefix)  # the forks left the shared prefix untouched...
    for name, arr in shared.state.items():  # ...down to every byte (the runtime recycles buffers)
        np.testing.assert_array_equal(arr, before[name], err_msg=name)


def test_states_in_turns_and_replaced_arrays_decode_exactly(fp32_bundle):
    """Steps alternate between two states, and the last-stepped state's arrays are swapped for copies
    midway: each still continues exactly as it would alone, in its own arrays (the ONNX runtime reuses a
    binding only for the same state with the same arrays)."""
    model = edgekit.load(fp32_bundle)
    prompts = [list(range(1000, 1020)), list(range(2000, 2011))]
    alone, alone_states = [], []
    for prompt in prompts:
        state = model.new_state()
        alone.append([model.prefill(state, prompt)] + [model.step(state, t) for t in (5, 6, 7, 8)])
        alone_states.append(state)
    states = [model.new_state(), model.new_state()]
    mixed: list[list[np.ndarray]] = [[model.prefill(s, p)] for s, p in zip(states, prompts)]
    for k, token in enumerate((5, 6, 7, 8)):
        order = (0, 1)
        if k == 2:  # state 1, stepped last, gets equal copies of its arrays (as a restored checkpoint) and goes next
            for layers in (states[1].conv, states[1].recurrent, states[1].keys, states[1].values):
                for i in layers:
                    layers[i] = layers[i].copy()
            order = (1, 0)
        for which in order:
            mixed[which].append(model.step(states[which], token))
    for got, want in zip(mixed, alone):
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)
    for got, want in zip(states, alone_states):  # the state's own (replaced) arrays hold the result
        for name, array in want.state.items():
            np.testing.assert_array_equal(got.state[name], array, err_msg=name)


def test_state_reports_its_size(fp32_bundle):
    model = edgekit.load(fp32_bundle)
    state = model.new_state()
    empty = state.nbytes
    model.prefill(state, [1, 2, 3])
    cfg = model.config
    per_token = 4 * 2 * len(cfg.attention_layers) * cfg.num_key_value_heads * cfg.head_dim
    assert state.nbytes - empty == 3 * per_token
    assert state.meta_state == {"length": 3, "next_position": 3}


def test_context_budget_is_enforced(fp32_bundle):
    model = edgekit.load(fp32_bundle, max_context=16)
    state = model.new_state()
    model.prefill(state, list(range(10)))
    with pytest.raises(EdgekitError, match="budget is 16"):
        model.prefill(state, list(range(10)))
    assert state.length == 10  # the refused prompt changed nothing
    tokens = list(model.generate([1, 2], state=state, max_new_tokens=100, stop_ids=[]))
    assert state.length == 16 and len(tokens) == 5  # generation stops at the budget instead of failing
