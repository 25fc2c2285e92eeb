"""The Qwen3.5 text decoder as a plain torch module for ExecuTorch, weights taken from the checkpoint.

The hybrid state lives in registered buffers, which ExecuTorch turns into mutable buffers shared by
the program's methods; the caller still owns it through two extra methods:

  forward(tokens [1, T], input_pos [1]) -> logits [1, V]   (T in 1..max_chunk)
      folds T tokens in at positions input_pos.. (DeltaNet states updated, KV rows written there);
      at input_pos 0 the DeltaNet states start from zero. This is the signature of ExecuTorch's LLM
      runner (Android ``LlmModule``), so the stock runner can drive the program too.
  forward_rows(tokens [1, T], embeds [1, T, H], positions [3, T], input_pos [1]) -> logits [1, V]
      the same over rows: embeds[0, t] where tokens[0, t] < 0 (vision rows), else the token's embedding;
      rotary from the mRoPE positions (t, h, w), which run behind the cache slots input_pos.. after
      an image. Slot 0 restarts the DeltaNet states as in forward.
  get_state() -> (conv..., recurrent..., key..., value...)                   copies of every buffer
  set_state(conv..., recurrent..., key..., value...)                         overwrites every buffer

The runtime keeps one state resident in the program and swaps it with ``get_state``/``set_state``
only when the caller switches to another ``HybridState`` (a checkpoint, a fork), so a plain
generate loop copies nothing. The recurrence runs through ExecuTorch's ``llama::gated_delta_rule``
kernel, attention through ``llama::update_cache`` + ``llama::custom_sdpa`` (KV layout [1, S, Hkv, D]);
linear layers are nn.Linear so torchao can quantize them (8-bit dynamic activations, int4 weights).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgekit.config import TextConfig
from edgekit.export.quantize import quantize_int4

# Importing these registers the torch ops the decoder calls: llama::{gated_delta_rule, update_cache,
# custom_sdpa} and quantized_decomposed::embedding_4bit.
for _ops in ("executorch.extension.llm.custom_ops.custom_ops", "executorch.exir.passes._quant_patterns_and_replacements"):
    importlib.import_module(_ops)

WeightSource = Callable[[str], torch.Tensor]  # checkpoint tensor by name under the text model, as float32


def rms_norm(x: torch.Tensor, scale: torch.Tensor, eps: float) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * scale


def linear(weight: torch.Tensor, bias: torch.Tensor | None = None) -> nn.Linear:
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    layer.weight = nn.Parameter(weight.contiguous(), requires_grad=False)
    if bias is not None:
        layer.bias = nn.Parameter(bias.contiguous(), requires_grad=False)
    return layer


class Int4Embedding(nn.Module):
    """Token rows from a blockwise int4 table (ExecuTorch's ``quantized_decomposed::embedding_4bit``)."""

    ROWS_AT_ONCE = 8192  # the quantizer's float temporaries are a few times its input: bound them

    def __init__(self, table: torch.Tensor, block_size: int) -> None:
        super().__init__()
        rows = [quantize_int4(table[i:i + self.ROWS_AT_ONCE].numpy(), block_size)
                for i in range(0, table.shape[0], self.ROWS_AT_ONCE)]
        packed = np.concatenate([q.packed.reshape(q.packed.shape[0], -1) for q in rows])
        # ExecuTorch packs the even element in the high nibble; ours (MatMulNBits') in the low one.
        packed = ((packed & 0x0F) << 4) | (packed >> 4)
        self.register_buffer("packed", torch.from_numpy(packed))
        self.register_buffer("scales", torch.from_numpy(np.concatenate([q.scales for q in rows])))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return torch.ops.quantized_decomposed.embedding_4bit.dtype(
            self.packed, self.scales, None, -8, 7, ids, dtype=torch.float32)


class Attention(nn.Module):
    """Gated full attention: fused q|gate|k|v projection, q/k RMSNorm, partial mRoPE, KV cache buffers."""

    def __init__(self, cfg: TextConfig, w: WeightSource, p: str, max_context: int) -> None:
        super().__init__()
        self.cfg = cfg
        nq, nkv, d = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        wq = w(f"{p}.q_proj.weight").reshape(nq, 2, d, -1)  # per head: [query | gate]
        self.qkvg = linear(torch.cat([wq[:, 0].reshape(nq * d, -1), wq[:, 1].reshape(nq * d, -1),
                                      w(f"{p}.k_proj.weight"), w(f"{p}.v_proj.weight")]))
        self.o_proj = linear(w(f"{p}.o_proj.weight"))
        self.register_buffer("q_norm", w(f"{p}.q_norm.weight") + 1.0)
        self.register_buffer("k_norm", w(f"{p}.k_norm.weight") + 1.0)
        self.register_buffer("key", torch.zeros(1, max_context, nkv, d))
        self.register_buffer("value", torch.zeros(1, max_context, nkv, d))

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, start: int) -> torch.Tensor:
        cfg = self.cfg
        nq, nkv, d = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        b, t, _ = x.shape
        q, gate, k, v = self.qkvg(x).split([nq * d, nq * d, nkv * d, nkv * d], dim=-1)
        q = rotate(rms_norm(q.view(b, t, nq, d), self.q_norm, cfg.rms_norm_eps), cos, sin)
        k = rotate(rms_norm(k.view(b, t, nkv, d), self.k_norm, cfg.rms_norm_eps), cos, sin)
        torch.ops.llama.update_cache(k, self.key, start)
        torch.ops.llama.update_cache(v.view(b, t, nkv, d), self.value, start)
        out = torch.ops.llama.custom_sdpa(q, self.key, self.value, start, None, 0.0, True)
        return self.o_proj(out.reshape(b, t, nq * d) * torch.sigmoid(gate))


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate-half RoPE on the first ``2 * cos.shape[-1]`` channels of [B, T, heads, D]."""
    half = cos.shape[-1]
    x1, x2, rest = x[..., :half], x[..., half:2 * half], x[..., 2 * half:]
    cos, sin = cos[:, :, None], sin[:, :, None]
    rotated = [x1 * cos - x2 * sin, x2 * cos + x1 * sin]
    return torch.cat(rotated + ([rest] if rest.shape[-1] else []), dim=-1)


class GatedDeltaNet(nn.Module):
    """Causal depthwise conv over q|k|v, L2-normed q/k, the gated delta rule, gated RMSNorm out."""

    def __init__(self, cfg: TextConfig, w: WeightSource, p: str) -> None:
        super().__init__()
        self.cfg = cfg
        self.in_proj_qkvz = linear(torch.cat([w(f"{p}.in_proj_qkv.weight"), w(f"{p}.in_proj_z.weight")]))
        # The beta/decay projections stay fp32 (see quantize filter): they steer the recurrence, cost nothing.
        self.in_proj_ba = linear(torch.cat([w(f"{p}.in_proj_b.weight"), w(f"{p}.in_proj_a.weight")]))
        self.out_proj = linear(w(f"{p}.out_proj.weight"))
        self.register_buffer("conv_weight", w(f"{p}.conv1d.weight").reshape(cfg.conv_dim, 1, -1))
        self.register_buffer("neg_a", -torch.exp(w(f"{p}.A_log")))
        self.register_buffer("dt_bias", w(f"{p}.dt_bias"))
        self.register_buffer("norm", w(f"{p}.norm.weight"))
        self.register_buffer("conv", torch.zeros(1, cfg.linear_conv_kernel_dim - 1, cfg.conv_dim))
        self.register_buffer("recurrent", torch.zeros(
            1, cfg.linear_num_value_heads, cfg.linear_key_head_dim, cfg.linear_value_head_dim))

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """``keep`` [T]: 0.0 at position 0, else 1.0; the state carried in is multiplied by it there, so a
        conversation starting at position 0 never sees the previous one (see ``Qwen35Decoder.forward``)."""
        cfg = self.cfg
        hk, hv = cfg.linear_num_key_heads, cfg.linear_num_value_heads
        dk, dv = cfg.linear_key_head_dim, cfg.linear_value_head_dim
        b, t, _ = x.shape
        qkv, z = self.in_proj_qkvz(x).split([cfg.conv_dim, hv * dv], dim=-1)
        beta_in, a = self.in_proj_ba(x).split([hv, hv], dim=-1)

        window = torch.cat([self.conv * keep[:1], qkv], dim=1)  # [B, K-1+T, C]
        self.conv.copy_(window[:, t:])
        qkv = F.silu(F.conv1d(window.transpose(1, 2), self.conv_weight, groups=cfg.conv_dim)).transpose(1, 2)
        q, k, v = qkv.split([hk * dk, hk * dk, hv * dv], dim=-1)
        q, k = l2_norm(q.reshape(b, t, hk, dk)) * dk ** -0.5, l2_norm(k.reshape(b, t, hk, dk))
        if hv != hk:  # each q/k head serves hv // hk consecutive value heads
            q, k = q.repeat_interleave(hv // hk, dim=2), k.repeat_interleave(hv // hk, dim=2)
        # The recurrence starts by scaling the state by the decay: a zero decay at position 0 drops the old one.
        decay = torch.exp(self.neg_a * F.softplus(a + self.dt_bias)) * keep[None, :, None]  # [B, T, Hv]
        beta = torch.sigmoid(beta_in)
        out, state = torch.ops.llama.gated_delta_rule(
            q.transpose(1, 2), k.transpose(1, 2), v.reshape(b, t, hv, dv).transpose(1, 2),
            decay.transpose(1, 2), beta.transpose(1, 2), self.recurrent)
        self.recurrent.copy_(state)
        out = rms_norm(out.transpose(1, 2), self.norm, cfg.rms_norm_eps) * F.silu(z.view(b, t, hv, dv))
        return self.out_proj(out.reshape(b, t, hv * dv))


def l2_norm(x: torch.Tensor) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).sum(-1, keepdim=True) + 1e-6)


class Layer(nn.Module):
    def __init__(self, cfg: TextConfig, w: WeightSource, i: int, max_context: int) -> None:
        super().__init__()
        p = f"layers.{i}"
        self.is_attention = cfg.layer_types[i] == "full_attention"
        self.mixer = (Attention(cfg, w, f"{p}.self_attn", max_context) if self.is_attention
                      else GatedDeltaNet(cfg, w, f"{p}.linear_attn"))
        inter = cfg.intermediate_size
        self.gate_up = linear(torch.cat([w(f"{p}.mlp.gate_proj.weight"), w(f"{p}.mlp.up_proj.weight")]))
        self.down = linear(w(f"{p}.mlp.down_proj.weight"))
        self.register_buffer("input_norm", w(f"{p}.input_layernorm.weight") + 1.0)
        self.register_buffer("post_norm", w(f"{p}.post_attention_layernorm.weight") + 1.0)
        self.inter, self.eps = inter, cfg.rms_norm_eps

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, start: int,
                keep: torch.Tensor) -> torch.Tensor:
        h = rms_norm(x, self.input_norm, self.eps)
        x = x + (self.mixer(h, cos, sin, start) if self.is_attention else self.mixer(h, keep))
        gate, up = self.gate_up(rms_norm(x, self.post_norm, self.eps)).split([self.inter, self.inter], dim=-1)
        return x + self.down(F.silu(gate) * up)


class Rotary(nn.Module):
    """Rotary angles [T, rotary_dim/2]: plain RoPE for text, interleaved mRoPE for rows with (t, h, w) positions."""

    def __init__(self, cfg: TextConfig) -> None:
        super().__init__()
        dim = cfg.rotary_dim
        self.register_buffer("inv_freq", 1.0 / cfg.rope_theta ** (torch.arange(0, dim, 2).float() / dim))
        # Interleaved mRoPE: which of (t, h, w) turns each frequency, as a 0/1 select [3, 1, dim/2].
        self.register_buffer("select", F.one_hot(torch.tensor(cfg.mrope_axes()), 3).T.float()[:, None])

    def text(self, positions: torch.Tensor) -> torch.Tensor:
        """``positions`` [T] float: the three mRoPE rows are all the running index, so this is plain RoPE."""
        return positions[:, None] * self.inv_freq

    def mrope(self, positions: torch.Tensor) -> torch.Tensor:
        """``positions`` [3, T] int64 (t, h, w): each frequency turned by its row (a 0/1 select is exact)."""
        return (positions.float()[:, :, None] * self.inv_freq * self.select).sum(0)


class Qwen35Decoder(nn.Module):
    """The whole text decoder with its state in buffers; see the module docstring for the methods.

    Every tensor lives in a child module (none directly on the decoder), so ``ForwardRows`` can export
    ``forward_rows`` over the very same modules under the same names.
    """

    def __init__(self, cfg: TextConfig, w: WeightSource, max_context: int, embedding_block_size: int | None,
                 finish: Callable[[nn.Module], None] | None = None) -> None:
        """``embedding_block_size``: int4 embedding table with this block size, or None for fp32.
        ``finish`` (e.g. quantization in place) runs on each layer and on the head as soon as it is built, so
        only one layer's float weights exist at a time."""
        super().__init__()
        self.cfg, self.max_context = cfg, max_context
        finish = finish or (lambda module: None)
        table = w("embed_tokens.weight")
        self.embed = (nn.Embedding.from_pretrained(table, freeze=True) if embedding_block_size is None
                      else Int4Embedding(table, embedding_block_size))
        self.rotary = Rotary(cfg)
        self.layers = nn.ModuleList()
        for i in range(cfg.num_layers):
            self.layers.append(Layer(cfg, w, i, max_context))
            finish(self.layers[i])
        self.final_norm = Norm(w("norm.weight") + 1.0, cfg.rms_norm_eps)
        self.lm_head = linear(table if cfg.tie_word_embeddings else w("lm_head.weight"))
        finish(self.lm_head)

    def forward(self, tokens: torch.Tensor, input_pos: torch.Tensor) -> torch.Tensor:
        """Text: the rotary position of each token is its cache slot."""
        slots = self.cache_slots(input_pos, tokens.shape[1])
        return self.run(self.embed(tokens), self.rotary.text(slots), input_pos, slots)

    def forward_rows(self, tokens: torch.Tensor, embeds: torch.Tensor, positions: torch.Tensor,
                     input_pos: torch.Tensor) -> torch.Tensor:
        """Rows from ``embeds`` [1, T, H] where ``tokens`` < 0 (vision), else token embeddings; rotary from the
        mRoPE ``positions`` [3, T], which run behind the cache slots after an image."""
        slots = self.cache_slots(input_pos, tokens.shape[1])
        rows = torch.where(tokens[..., None] < 0, embeds, self.embed(tokens.clamp(min=0)))
        return self.run(rows, self.rotary.mrope(positions), input_pos, slots)

    @staticmethod
    def cache_slots(input_pos: torch.Tensor, count: int) -> torch.Tensor:
        """The KV rows [T] (float) the new tokens go to: input_pos, input_pos + 1, ..."""
        return (input_pos + torch.arange(count)).float()

    def run(self, x: torch.Tensor, angles: torch.Tensor, input_pos: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
        """The layers and the head over rows ``x`` [1, T, H] with rotary ``angles`` [T, rotary_dim/2]."""
        start = input_pos[0].item()
        torch._check_is_size(start)
        torch._check(start + x.shape[1] <= self.max_context)
        cos, sin = torch.cos(angles)[None], torch.sin(angles)[None]
        # Slot 0 starts a conversation: the DeltaNet state carried in is dropped by a product, which
        # XNNPACK runs, rather than a select (a portable `where` over the 18 MiB state took ~26 ms a token).
        # A product assumes finite values in the buffers: ExecuTorch's runtimes zero-initialize their
        # memory-planned arenas, and states stay finite.
        keep = (slots != 0).float()
        for layer in self.layers:
            x = layer(x, cos, sin, start, keep)
        return self.lm_head(self.final_norm(x[:, -1]))


class Norm(nn.Module):
    """RMSNorm with a fixed scale (a module, so the decoder holds no tensor of its own)."""

    def __init__(self, scale: torch.Tensor, eps: float) -> None:
        super().__init__()
        self.register_buffer("scale", scale)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.scale, self.eps)


class ForwardRows(nn.Module):
    """``decoder.forward_rows`` as a module, to export as one more method of the program.

    It registers the decoder's children under their own names, so the exported buffers carry the same
    names as ``forward``'s (ExecuTorch shares mutable buffers between methods by name, and XNNPACK
    stores equal weights once), and calls the decoder's method, which reads those same modules.
    """

    def __init__(self, decoder: Qwen35Decoder) -> None:
        super().__init__()
        for name, module in decoder.named_children():
            self.add_module(name, module)
        self._decoder = [decoder]  # a list: not registered a second time under another name

    def forward(self, tokens: torch.Tensor, embeds: torch.Tensor, positions: torch.Tensor,
                input_pos: torch.Tensor) -> torch.Tensor:
        return self._decoder[0].forward_rows(tokens, embeds, positions, input_pos)


class StateIO(nn.Module):
    """``get_state`` (no inputs) or ``set_state`` (one array per buffer), over the decoder's state buffers.

    It holds the very same buffers under the same names as the decoder (``layers.3.mixer.key``...), and
    ExecuTorch shares mutable buffers between methods by name. KV is read and written in the runtime's
    layout [1, Hkv, S, D]; the decoder keeps it as [1, S, Hkv, D] for ``custom_sdpa``.
    """

    def __init__(self, decoder: Qwen35Decoder, write: bool) -> None:
        super().__init__()
        self.write = write
        self.order = decoder.cfg.state_tensors()
        self.layers = nn.ModuleList()
        for layer in decoder.layers:
            holder, mixer = nn.Module(), nn.Module()
            for name in ("key", "value") if layer.is_attention else ("conv", "recurrent"):
                mixer.register_buffer(name, getattr(layer.mixer, name))
            holder.mixer = mixer
            self.layers.append(holder)

    def buffers_in_order(self) -> list[tuple[str, torch.Tensor]]:
        """(kind, buffer) in ``TextConfig.state_tensors`` order, the order ``HybridState`` uses."""
        return [(kind, getattr(self.layers[i].mixer, kind)) for kind, i in self.order]

    def forward(self, *arrays: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if not self.write:
            return tuple(buf.transpose(1, 2).contiguous() if kind in ("key", "value") else buf.clone()
                         for kind, buf in self.buffers_in_order())
        for (kind, buf), array in zip(self.buffers_in_order(), arrays):
            buf.copy_(array.transpose(1, 2) if kind in ("key", "value") else array)
        return (torch.zeros(1),)
