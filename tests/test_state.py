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
