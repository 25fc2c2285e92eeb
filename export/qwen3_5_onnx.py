"""The Qwen3.5 text decoder written out as one ONNX graph, weights taken straight from the checkpoint.

One graph serves prefill and decode: any number of new tokens T >= 1, the whole hybrid state in and out.

Inputs
  input_ids      int64 [B, T]      token ids; a negative id takes its row from ``inputs_embeds`` instead
  inputs_embeds  float [B, E, H]   E = T (vision rows) or 1 (a zero row, text only)
  position_ids   int64 [3, B, T]   mRoPE (t, h, w) positions; all three equal for text
  past.{i}.conv       float [B, K-1, C]      DeltaNet layer i: last K-1 inputs of its causal conv
  past.{i}.recurrent  float [B, Hv, dk, dv]  DeltaNet layer i: recurrent state
  past.{i}.key/value  float [B, Hkv, S, D]   attention layer i: its KV cache (see "KV update" below)
  past_length    int64 []          tokens already in the KV cache (in_place mode only)
Outputs
  logits              float [B, 1, V]        last position only
  present.{i}.conv / present.{i}.recurrent   the new DeltaNet states
  present.{i}.key/value  float [B, Hkv, S', D]

KV update (the manifest's ``kv_update``), never a copy of the whole cache per step:
  in_place  (contrib ops) past and present are one preallocated buffer (S = S' = the context budget,
            the runtime binds both to the same memory); GroupQueryAttention writes the T new rows
            after the ``past_length`` valid ones.
  append    (standard ops) past holds the S = P valid rows, present only the S' = T new rows, which
            the runtime writes into its preallocated cache.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from onnx import TensorProto

from edgekit.config import TextConfig
from edgekit.export.graph_builder import CONTRIB_DOMAIN, GraphBuilder
from edgekit.export.quantize import quantize_int4

FLOAT = TensorProto.FLOAT
INT64 = TensorProto.INT64

# A function that returns one checkpoint tensor (as float32 numpy) by its name under the text model.
WeightSource = Callable[[str], np.ndarray]


@dataclass(frozen=True)
class GraphOptions:
    """How to lower the decoder: weights fp32 or int4, DeltaNet through contrib ops or plain ONNX."""

    quant: str = "int4"  # "int4" | "fp32"
    block_size: int = 32
    accuracy_level: int = 4  # MatMulNBits: int8 activations (fast path on CPU)
    contrib_ops: bool = True  # False: CausalConvWithState/LinearAttention as standard ONNX (Conv, Scan)


class DecoderWriter:
    """Writes the graph node by node; one method per block of the architecture."""

    def __init__(self, cfg: TextConfig, weights: WeightSource, g: GraphBuilder, opts: GraphOptions) -> None:
        self.cfg, self.w, self.g, self.opts = cfg, weights, g, opts

    # -- linear layers ---------------------------------------------------------------------------
    def linear(self, x: str, name: str, weight: np.ndarray) -> str:
        """``x @ weight.T`` for a ``[N, K]`` weight: MatMulNBits when int4, else a plain MatMul."""
        g = self.g
        if self.opts.quant == "fp32":
            return g.op("MatMul", x, g.weight(f"{name}.weight_t", np.ascontiguousarray(weight.T)))
        q = quantize_int4(weight, self.opts.block_size)
        n, k = weight.shape
        return g.op("MatMulNBits", x, g.weight(f"{name}.qweight", q.packed), g.weight(f"{name}.scales", q.scales),
                    domain=CONTRIB_DOMAIN, K=k, N=n, bits=4, block_size=self.opts.block_size,
                    accuracy_level=self.opts.accuracy_level)

    def rms_norm(self, x: str, name: str, weight: np.ndarray, offset: float) -> str:
        """Qwen3.5 RMSNorm over the last axis; decoder norms scale by (1 + w), the DeltaNet gate norm by w."""
        scale = self.g.weight(f"{name}.scale", (weight.astype(np.float32) + offset))
        return self.g.op("RMSNormalization", x, scale, axis=-1, epsilon=self.cfg.rms_norm_eps)

    def add_norm(self, residual: str, delta: str, name: str) -> tuple[str, str]:
        """``residual + delta`` and its decoder RMSNorm; one fused SkipSimplifiedLayerNormalization with contrib ops."""
        g = self.g
        if not self.opts.contrib_ops:
            total = g.op("Add", residual, delta)
            return self.rms_norm(total, name, self.w(f"{name}.weight"), 1.0), total
        gamma = g.weight(f"{name}.scale", self.w(f"{name}.weight").astype(np.float32) + 1.0)
        normed, _, _, total = g.op("SkipSimplifiedLayerNormalization", residual, delta, gamma, n_out=4, omit=(1, 2),
                                   domain=CONTRIB_DOMAIN, epsilon=self.cfg.rms_norm_eps)
        return normed, total

    def silu(self, x: str) -> str:
        return self.g.op("Mul", x, self.g.op("Sigmoid", x))

    def split(self, x: str, sizes: list[int], axis: int = -1) -> list[str]:
        return self.g.op("Split", x, self.g.const(sizes), axis=axis, n_out=len(sizes))

    # -- the whole graph -------------------------------------------------------------------------
    def build(self, on_layer: Callable[[int], None] | None = None) -> None:
        """Write the whole graph; ``on_layer(i)`` is called after each decoder layer (progress)."""
        cfg, g = self.cfg, self.g
        H = cfg.hidden_size
        ids = g.input("input_ids", INT64, ["batch", "seq"])
        embeds_in = g.input("inputs_embeds", FLOAT, ["batch", "embeds_seq", H])
        positions = g.input("position_ids", INT64, [3, "batch", "seq"])
        conv_shape = [cfg.linear_conv_kernel_dim - 1, cfg.conv_dim]
        rec_shape = [cfg.linear_num_value_heads, cfg.linear_key_head_dim, cfg.linear_value_head_dim]
        kv_heads, head_dim = cfg.num_key_value_heads, cfg.head_dim
        past_seq, new_seq = ("max_context", "max_context") if self.opts.contrib_ops else ("past_seq", "seq")
        state_shape = {"conv": ["batch", *conv_shape], "recurrent": ["batch", *rec_shape],
                       "key": ["batch", kv_heads, past_seq, head_dim], "value": ["batch", kv_heads, past_seq, head_dim]}
        for kind, i in cfg.state_tensors():
            g.input(f"past.{i}.{kind}", FLOAT, state_shape[kind])
        if self.opts.contrib_ops:
            g.input("past_length", INT64, [])

        g.scope = "embed"
        residual = self.embed(ids, embeds_in)
        g.scope = "positions"
        cos, sin = self.rotary(positions)
        lengths = self.kv_lengths(ids) if self.opts.contrib_ops else None
        mask = None if self.opts.contrib_ops else self.causal_mask(ids, f"past.{cfg.attention_layers[0]}.key")
        normed = self.rms_norm(residual, "layers.0.input_layernorm", self.w("layers.0.input_layernorm.weight"), 1.0)
        for i, layer_type in enumerate(cfg.layer_types):
            p = f"layers.{i}"
            g.scope = f"{p}.linear_attn" if layer_type == "linear_attention" else f"{p}.self_attn"
            if layer_type == "linear_attention":
                mixed, conv, rec = self.gated_deltanet(normed, i)
                g.output(conv, f"present.{i}.conv", FLOAT, ["batch", *conv_shape])
                g.output(rec, f"present.{i}.recurrent", FLOAT, ["batch", *rec_shape])
            else:
                mixed, key, value = self.attention(normed, i, cos, sin, mask, lengths)
                g.output(key, f"present.{i}.key", FLOAT, ["batch", kv_heads, new_seq, head_dim])
                g.output(value, f"present.{i}.value", FLOAT, ["batch", kv_heads, new_seq, head_dim])
            g.scope = f"{p}.norm"
            normed, residual = self.add_norm(residual, mixed, f"{p}.post_attention_layernorm")
            g.scope = f"{p}.mlp"
            mlp_out = self.mlp(normed, p)
            g.scope = f"{p}.norm"
            if i + 1 < cfg.num_layers:
                normed, residual = self.add_norm(residual, mlp_out, f"layers.{i + 1}.input_layernorm")
            else:
                residual = g.op("Add", residual, mlp_out)
            if on_layer:
                on_layer(i)

        hidden = residual
        g.scope = "lm_head"
        last = g.op("Gather", hidden, g.const(-1), axis=1)  # [B, H]: logits for the last position only
        last = g.op("Unsqueeze", last, g.const([1]))
        last = self.rms_norm(last, "norm", self.w("norm.weight"), 1.0)
        g.output(self.lm_head(last), "logits", FLOAT, ["batch", 1, cfg.vocab_size])

    # -- embedding and tied head -----------------------------------------------------------------
    def embed(self, ids: str, embeds_in: str) -> str:
        """Token rows (int4: gathered from the same packed weights the lm_head uses), or caller rows for ids < 0."""
        g, cfg = self.g, self.cfg
        safe_ids = g.op("Max", ids, g.const(0))
        table = self.w("embed_tokens.weight")
        if self.opts.quant == "fp32":
            self._embed_fp32 = g.weight("embed_tokens.weight", table)
            rows = g.op("Gather", self._embed_fp32, safe_ids, axis=0)
        else:
            q = quantize_int4(table, self.opts.block_size)
            self._head_int4 = (g.weight("embed_tokens.qweight", q.packed), g.weight("embed_tokens.scales", q.scales))
            scales3 = g.op("Reshape", self._head_int4[1], g.const([*q.scales.shape, 1]))
            rows = g.op("GatherBlockQuantized", self._head_int4[0], safe_ids, scales3, domain=CONTRIB_DOMAIN,
                        bits=4, block_size=self.opts.block_size, gather_axis=0, quantize_axis=2)
            rows = g.op("Reshape", rows, g.const([0, 0, cfg.hidden_size]))
        from_caller = g.op("Less", g.op("Unsqueeze", ids, g.const([-1])), g.const(0))
        return g.op("Where", from_caller, embeds_in, rows)

    def lm_head(self, x: str) -> str:
        g, cfg = self.g, self.cfg
        if not cfg.tie_word_embeddings:
            return self.linear(x, "lm_head", self.w("lm_head.weight"))
        if self.opts.quant == "fp32":
            return g.op("MatMul", x, g.op("Transpose", self._embed_fp32, perm=[1, 0]))
        packed, scales = self._head_int4
        return g.op("MatMulNBits", x, packed, scales, domain=CONTRIB_DOMAIN, K=cfg.hidden_size,
                    N=cfg.vocab_size, bits=4, block_size=self.opts.block_size,
                    accuracy_level=self.opts.accuracy_level)

    # -- positions -------------------------------------------------------------------------------
    def rotary(self, positions: str) -> tuple[str, str]:
        """Interleaved mRoPE: frequency j takes its position from row t, h or w by j mod 3 (within sections)."""
        g, cfg = self.g, self.cfg
        dim = cfg.rotary_dim
        inv_freq = 1.0 / (cfg.rope_theta ** (np.arange(0, dim, 2, dtype=np.float32) / dim))
        select = np.zeros((3, 1, 1, dim // 2), dtype=np.float32)  # which of (t, h, w) feeds each frequency
        select[cfg.mrope_axes(), 0, 0, np.arange(dim // 2)] = 1.0
        pos = g.op("Unsqueeze", g.op("Cast", positions, to=FLOAT), g.const([-1]))  # [3, B, T, 1]
        freqs = g.op("Mul", pos, g.weight("rotary.inv_freq", inv_freq.astype(np.float32)))
        freqs = g.op("ReduceSum", g.op("Mul", freqs, g.weight("rotary.mrope_select", select)), g.const([0]),
                     keepdims=0)  # [B, T, dim/2]
        return g.op("Cos", freqs), g.op("Sin", freqs)

    def causal_mask(self, ids: str, past_key: str) -> str:
        """[T, P+T] bool: new token t (absolute P+t) sees cached rows s <= P+t (append mode)."""
        g = self.g
        t_len = g.op("Gather", g.op("Shape", ids), g.const(1), axis=0)
        p_len = g.op("Gather", g.op("Shape", past_key), g.const(2), axis=0)
        total = g.op("Add", t_len, p_len)
        rows = g.op("Add", g.op("Range", g.const(0), t_len, g.const(1)), p_len)
        cols = g.op("Range", g.const(0), total, g.const(1))
        return g.op("LessOrEqual", g.op("Unsqueeze", cols, g.const([0])), g.op("Unsqueeze", rows, g.const([1])))

    def kv_lengths(self, ids: str) -> tuple[str, str]:
        """GroupQueryAttention's (seqlens_k [B] = total - 1, total_sequence_length []) as int32 (in_place mode)."""
        g = self.g
        shape = g.op("Shape", ids)
        total = g.op("Add", "past_length", g.op("Gather", shape, g.const(1), axis=0))
        total = g.op("Cast", total, to=TensorProto.INT32)
        seqlens = g.op("Expand", g.op("Sub", total, g.const(1, np.int32)), g.op("Gather", shape, g.const([0]), axis=0))
        return seqlens, total

    # -- full attention --------------------------------------------------------------------------
    def attention(self, x: str, i: int, cos: str, sin: str, mask: str | None,
                  lengths: tuple[str, str] | None) -> tuple[str, str, str]:
        g, cfg = self.g, self.cfg
        p = f"layers.{i}.self_attn"
        nq, nkv, d = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        # q_proj interleaves [query | gate] per head; regroup rows so one Split separates them.
        wq = self.w(f"{p}.q_proj.weight").reshape(nq, 2, d, -1)
        fused = np.concatenate([wq[:, 0].reshape(nq * d, -1), wq[:, 1].reshape(nq * d, -1),
                                self.w(f"{p}.k_proj.weight"), self.w(f"{p}.v_proj.weight")])
        q, gate, k, v = self.split(self.linear(x, f"{p}.qkv_proj", fused), [nq * d, nq * d, nkv * d, nkv * d])
        q = self.rms_norm(g.reshape(q, [0, 0, nq, d]), f"{p}.q_norm", self.w(f"{p}.q_norm.weight"), 1.0)
        k = self.rms_norm(g.reshape(k, [0, 0, nkv, d]), f"{p}.k_norm", self.w(f"{p}.k_norm.weight"), 1.0)
        q, k = self.apply_rotary(q, nq, cos, sin), self.apply_rotary(k, nkv, cos, sin)  # [B, T, heads*D]
        if lengths is not None:  # in_place: one fused kernel appends to the shared cache and attends
            # Its present outputs are the graph outputs themselves: a renaming Identity would copy the cache.
            out, keys, values = g.op("GroupQueryAttention", q, k, v, f"past.{i}.key", f"past.{i}.value", *lengths,
                                     out=[None, f"present.{i}.key", f"present.{i}.value"], n_out=3,
                                     domain=CONTRIB_DOMAIN, num_heads=nq, kv_num_heads=nkv, scale=d ** -0.5)
            return self.gated_out(out, gate, p), keys, values

        k = g.op("Transpose", g.reshape(k, [0, 0, nkv, d]), perm=[0, 2, 1, 3])  # new rows [B, Hkv, T, D]
        v = g.op("Transpose", g.reshape(v, [0, 0, nkv, d]), perm=[0, 2, 1, 3])
        keys = g.op("Concat", f"past.{i}.key", k, axis=2)  # [B, Hkv, S, D]
        values = g.op("Concat", f"past.{i}.value", v, axis=2)
        groups = nq // nkv
        # Query head h reads KV head h // groups: view queries as [B, Hkv, groups, T, D].
        qh = g.op("Transpose", g.reshape(q, [0, 0, nkv, groups, d]), perm=[0, 2, 3, 1, 4])
        kh = g.op("Unsqueeze", g.op("Transpose", keys, perm=[0, 1, 3, 2]), g.const([2]))  # [B, Hkv, 1, D, S]
        vh = g.op("Unsqueeze", values, g.const([2]))  # [B, Hkv, 1, S, D]
        scores = g.op("Mul", g.op("MatMul", qh, kh), g.const(d ** -0.5, np.float32))
        scores = g.op("Where", mask, scores, g.const(-np.inf, np.float32))
        out = g.op("MatMul", g.op("Softmax", scores, axis=-1), vh)  # [B, Hkv, groups, T, D]
        out = g.reshape(g.op("Transpose", out, perm=[0, 3, 1, 2, 4]), [0, 0, nq * d])
        return self.gated_out(out, gate, p), k, v

    def gated_out(self, out: str, gate: str, p: str) -> str:
        """The attention output times sigmoid(gate), through o_proj."""
        out = self.g.op("Mul", out, self.g.op("Sigmoid", gate))
        return self.linear(out, f"{p}.o_proj", self.w(f"{p}.o_proj.weight"))

    def apply_rotary(self, x: str, heads: int, cos: str, sin: str) -> str:
        """Rotate-half RoPE on the first ``rotary_dim`` channels of each head of [B, T, heads, D]; returns
        [B, T, heads*D]. ``cos``/``sin`` are per position [B, T, rotary_dim/2] (mRoPE already applied)."""
        g, cfg = self.g, self.cfg
        packed = g.reshape(x, [0, 0, heads * cfg.head_dim])
        return g.op("RotaryEmbedding", packed, cos, sin, num_heads=heads, rotary_embedding_dim=cfg.rotary_dim,
                    interleaved=0)

    # -- Gated DeltaNet --------------------------------------------------------------------------
    def gated_deltanet(self, x: str, i: int) -> tuple[str, str, str]:
        g, cfg = self.g, self.cfg
        p = f"layers.{i}.linear_attn"
        hk, hv = cfg.linear_num_key_heads, cfg.linear_num_value_heads
        dk, dv = cfg.linear_key_head_dim, cfg.linear_value_head_dim
        key_dim, value_dim = hk * dk, hv * dv
        fused = np.concatenate([self.w(f"{p}.in_proj_qkv.weight"), self.w(f"{p}.in_proj_z.weight")])
        qkv, z = self.split(self.linear(x, f"{p}.in_proj_qkvz", fused), [cfg.conv_dim, value_dim])
        # The small beta/decay projections stay fp32: they steer the recurrence and cost nothing.
        ab = np.concatenate([self.w(f"{p}.in_proj_b.weight"), self.w(f"{p}.in_proj_a.weight")])
        b, a = self.split(g.op("MatMul", x, g.weight(f"{p}.in_proj_ba.weight_t", np.ascontiguousarray(ab.T))), [hv, hv])

        conv_w = self.w(f"{p}.conv1d.weight").reshape(cfg.conv_dim, 1, cfg.linear_conv_kernel_dim)
        qkv, conv_state = self.causal_conv(qkv, f"past.{i}.conv", g.weight(f"{p}.conv1d.weight", conv_w))
        qk, v = self.split(qkv, [2 * key_dim, value_dim])
        qk = self.l2_norm(g.reshape(qk, [0, 0, 2 * hk, dk]))  # the q heads then the k heads, in one node
        if hv != hk:  # grouped value heads: each q/k head serves hv // hk consecutive value heads
            qk = g.op("Expand", g.op("Unsqueeze", qk, g.const([3])), g.const([1, 1, 1, hv // hk, 1]))
        q, k = self.split(g.reshape(qk, [0, 0, 2 * hv * dk]), [hv * dk, hv * dk])
        decay, beta = self.gates(a, b, p)
        core, rec_state = self.delta_rule(q, k, v, decay, beta, f"past.{i}.recurrent")
        out = self.linear(self.gated_norm(core, z, p), f"{p}.out_proj", self.w(f"{p}.out_proj.weight"))
        return out, conv_state, rec_state

    def l2_norm(self, x: str) -> str:
        """x * rsqrt(sum(x^2) + 1e-6) over the last axis (transformers' epsilon kept), as one RMSNorm:
        RMSNorm(x, eps / d) / sqrt(d) is the same expression."""
        d = self.cfg.linear_key_head_dim
        scale = self.g.const(np.full(d, d ** -0.5), np.float32)
        return self.g.op("RMSNormalization", x, scale, axis=-1, epsilon=1e-6 / d)

    def gates(self, a: str, b: str, p: str) -> tuple[str, str]:
        """The recurrence's per-head decay -exp(A_log) * softplus(a + dt_bias) (log space) and beta = sigmoid(b)."""
        g = self.g
        neg_a = g.weight(f"{p}.neg_A", -np.exp(self.w(f"{p}.A_log").astype(np.float32)))
        dt_bias = g.weight(f"{p}.dt_bias", self.w(f"{p}.dt_bias"))
        if self.opts.contrib_ops:
            decay, beta = g.op("LinearAttentionGate", a, dt_bias, neg_a, b, n_out=2, domain=CONTRIB_DOMAIN)
            return decay, beta
        return g.op("Mul", neg_a, g.op("Softplus", g.op("Add", a, dt_bias))), g.op("Sigmoid", b)

    def gated_norm(self, core: str, z: str, p: str) -> str:
        """Per-head RMSNorm of the recurrence output times silu(z), on packed [B, T, Hv*dv]."""
        g, cfg = self.g, self.cfg
        hv, dv = cfg.linear_num_value_heads, cfg.linear_value_head_dim
        weight = self.w(f"{p}.norm.weight")
        if self.opts.contrib_ops:
            return g.op("GatedRMSNorm", core, g.weight(f"{p}.norm.scale", weight.astype(np.float32)), z,
                        domain=CONTRIB_DOMAIN, activation="silu", epsilon=cfg.rms_norm_eps)
        core = self.rms_norm(g.reshape(core, [0, 0, hv, dv]), f"{p}.norm", weight, 0.0)
        return g.reshape(g.op("Mul", core, self.silu(g.reshape(z, [0, 0, hv, dv]))), [0, 0, hv * dv])

    def causal_conv(self, x: str, past: str, weight: str) -> tuple[str, str]:
        """Depthwise causal conv + SiLU over [B, T, C], carrying the last K-1 inputs as state [B, K-1, C]."""
        g, cfg = self.g, self.cfg
        if self.opts.contrib_ops:
            out, state = g.op("CausalConvWithState", x, weight, None, past, domain=CONTRIB_DOMAIN, n_out=2,
                              out=[None, past.replace("past.", "present.")],
                              activation="silu", channels_last=1, ndim=1)
            return out, state
        window = g.op("Concat", past, x, axis=1)  # [B, K-1+T, C]
        conv = g.op("Conv", g.op("Transpose", window, perm=[0, 2, 1]), weight, group=cfg.conv_dim,
                    kernel_shape=[cfg.linear_conv_kernel_dim])
        state = g.op("Slice", window, g.const([-(cfg.linear_conv_kernel_dim - 1)]), g.const([2**62]), g.const([1]))
        return self.silu(g.op("Transpose", conv, perm=[0, 2, 1])), state

    def delta_rule(self, q: str, k: str, v: str, decay: str, beta: str, past: str) -> tuple[str, str]:
        """Gated delta rule over T tokens, q/k/v packed as [B, T, Hv*d]; returns ([B, T, Hv*dv], new state)."""
        g, cfg = self.g, self.cfg
        hv, dk, dv = cfg.linear_num_value_heads, cfg.linear_key_head_dim, cfg.linear_value_head_dim
        if self.opts.contrib_ops:
            out, state = g.op("LinearAttention", q, k, v, past, decay, beta, domain=CONTRIB_DOMAIN, n_out=2,
                              out=[None, past.replace("past.", "present.")],
                              q_num_heads=hv, kv_num_heads=hv, update_rule="gated_delta", scale=dk ** -0.5)
            return out, state
        return self.delta_rule_scan(g.reshape(q, [0, 0, hv, dk]), g.reshape(k, [0, 0, hv, dk]),
                                    g.reshape(v, [0, 0, hv, dv]), decay, beta, past)

    def delta_rule_scan(self, q: str, k: str, v: str, decay: str, beta: str, past: str) -> tuple[str, str]:
        """The same recurrence in standard ONNX: a Scan over tokens (for runtimes without the contrib op)."""
        g, cfg = self.g, self.cfg
        dk = cfg.linear_key_head_dim
        body = GraphBuilder(f"delta_rule_{next(g._ids)}", parent=g)
        s = body.input("s", FLOAT, None)
        qt, kt, vt, gt, bt = (body.input(n, FLOAT, None) for n in ("q_t", "k_t", "v_t", "g_t", "b_t"))
        # q_t/k_t/v_t: [B, Hv, d]; g_t/b_t: [B, Hv]
        s = body.op("Mul", s, body.op("Unsqueeze", body.op("Exp", gt), body.const([2, 3])))
        k_row = body.op("Unsqueeze", kt, body.const([2]))  # [B, Hv, 1, dk]
        kv_mem = body.op("MatMul", k_row, s)  # [B, Hv, 1, dv]
        delta = body.op("Mul", body.op("Sub", body.op("Unsqueeze", vt, body.const([2])), kv_mem),
                        body.op("Unsqueeze", bt, body.const([2, 3])))
        s = body.op("Add", s, body.op("MatMul", body.op("Transpose", k_row, perm=[0, 1, 3, 2]), delta))
        q_row = body.op("Mul", body.op("Unsqueeze", qt, body.const([2])), body.const(dk ** -0.5, np.float32))
        body.output(s, "s_out", FLOAT, None)
        body.output(body.op("Squeeze", body.op("MatMul", q_row, s), body.const([2])), "o_t", FLOAT, None)
        graph = body.graph()
        state, out = g.op("Scan", past, q, k, v, decay, beta, n_out=2, body=graph, num_scan_inputs=5,
                          scan_input_axes=[1] * 5, scan_output_axes=[1])
        return g.reshape(out, [0, 0, -1]), state

    # -- MLP -------------------------------------------------------------------------------------
    def mlp(self, x: str, p: str) -> str:
        g, inter = self.g, self.cfg.intermediate_size
        fused = np.concatenate([self.w(f"{p}.mlp.gate_proj.weight"), self.w(f"{p}.mlp.up_proj.weight")])
        gate, up = self.split(self.linear(x, f"{p}.mlp.gate_up_proj", fused), [inter, inter])
        return self.linear(g.op("Mul", self.silu(gate), up), f"{p}.mlp.down_proj", self.w(f"{p}.mlp.down_proj.weight"))
