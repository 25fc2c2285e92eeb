"""Run the transformers reference the way the runtime runs: prefill, then one token at a time."""

from __future__ import annotations

import numpy as np
import torch

IMAGE_PAD, VIDEO_PAD = 248056, 248057


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


@torch.no_grad()
def hf_prompt(hf, ids: np.ndarray, image=None, video=None):
    """transformers' forward on the same ids (pads in place), with its own get_rope_index; returns logits, cache, positions."""
    ids = torch.from_numpy(ids)[None]
    mm = torch.zeros_like(ids)
    mm[ids == IMAGE_PAD], mm[ids == VIDEO_PAD] = 1, 2
    kw = {}
    if image is not None:
        kw.update(pixel_values=torch.from_numpy(image.pixels), image_grid_thw=torch.tensor([image.grid]))
    if video is not None:
        kw.update(pixel_values_videos=torch.from_numpy(video.pixels), video_grid_thw=torch.tensor([video.grid]))
    out = hf(input_ids=ids, mm_token_type_ids=mm, use_cache=True, **kw)
    positions, _ = hf.model.get_rope_index(ids, mm, kw.get("image_grid_thw"), kw.get("video_grid_thw"))
    return out.logits[0, -1].numpy(), out.past_key_values, positions[:, 0].numpy()


def greedy_both(model, state, logits, hf, cache, ref, steps=5):
    """Greedy steps on both sides: same tokens, logits within 1e-4 (so the positions after the prompt agree)."""
    for _ in range(steps):
        token = int(np.argmax(logits))
        assert token == int(np.argmax(ref))
        logits = model.step(state, token)
        with torch.no_grad():
            out = hf(input_ids=torch.tensor([[token]]), past_key_values=cache, use_cache=True)
        cache, ref = out.past_key_values, out.logits[0, -1].numpy()
        assert np.abs(logits - ref).max() < 1e-4
