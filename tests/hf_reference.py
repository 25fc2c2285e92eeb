"""Run the transformers reference the way the runtime runs: prefill, then one token at a time."""

from __future__ import annotations

import numpy as np
import torch


class HFRunner:
    """Holds a transformers model and its cache; ``feed(ids)`` returns the last position's logits."""

    def __init__(self, model) -> None:
        self.model = model
        self.cache = None

    @torch.no_grad()
    def feed(self, ids) -> np.ndarray:
        out = self.model(input_ids=torch.tensor([list(ids)]), past_key_values=self.cache, use_cache=True)
        self.cache = out.past_key_values
        return out.logits[0, -1].float().numpy()

    @torch.no_grad()
    def all_logits(self, ids) -> np.ndarray:
        """Logits at every position of ``ids`` from a cold forward (no cache)."""
        return self.model(input_ids=torch.tensor([list(ids)])).logits[0].float().numpy()

    def states(self, deltanet_layers, attention_layers) -> dict[str, np.ndarray]:
        """The cache in edgekit's layout: conv [1, K-1, C], recurrent, key/value [1, Hkv, S, D]."""
        layers = self.cache.layers
        out = {}
        for i in deltanet_layers:
            out[f"conv.{i}"] = layers[i].conv_states[0][:, :, 1:].transpose(1, 2).numpy()
            out[f"recurrent.{i}"] = layers[i].recurrent_states[0].numpy()
        for i in attention_layers:
            out[f"key.{i}"] = layers[i].keys.numpy()
            out[f"value.{i}"] = layers[i].values.numpy()
        return out
