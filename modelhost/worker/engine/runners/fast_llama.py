"""Batched forward for llama-layout decoders (llama, mistral, qwen2) in plain torch over a preallocated KV cache.

One step runs every entry (prompt chunks and single-token decodes) through the matmuls as one flat batch of
tokens, with fused QKV and gate/up weights (prepacked for oneDNN in bf16). Attention is per kind: decodes
attend in one batched matmul over the slots' cache rows (masked to each slot's own length), prompt chunks
one at a time with SDPA. The LM head runs only on the positions whose logits the engine wants.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from modelhost.worker.engine.runners.base import RunnerEntry
from modelhost.worker.engine.runners.int4_weights import FourBitSwitch, SplitLinear, exact_int4

SUPPORTED_MODEL_TYPES = frozenset({"llama", "mistral", "qwen2"})
_SIMPLE_ROPE_TYPES = frozenset({"default", "linear", "llama3", "yarn"})  # inv_freq and scaling fixed at load

Linear = Callable[[torch.Tensor], torch.Tensor]


# A transformers model or one of its submodules. Typed as Any: torch.nn.Module's __getattr__ answers
# `Tensor | Module` for every attribute, which hides the (well-known) structure of a llama-family model.
HFModel = Any


def fast_path_blocker(model: HFModel, max_model_len: int) -> str | None:
    """Why the fast path cannot run this model (None when it can)."""
    config = model.config
    if config.model_type not in SUPPORTED_MODEL_TYPES:
        return f"model_type {config.model_type!r} is not llama-family"
    if getattr(config, "hidden_act", "silu") != "silu":
        return f"hidden_act {config.hidden_act!r}"
    rope = getattr(config, "rope_parameters", None) or {}
    if rope.get("rope_type", "default") not in _SIMPLE_ROPE_TYPES:
        return f"rope_type {rope.get('rope_type')!r}"
    window = getattr(config, "sliding_window", None)
    windowed = window is not None and (config.model_type != "qwen2" or getattr(config, "use_sliding_window", False))
    if windowed and window is not None and window < max_model_len:
        return f"sliding_window {window} < max_model_len {max_model_len}"
    if not hasattr(getattr(model, "model", None), "rotary_emb"):
        return "no rotary embedding module"
    return None


def _make_linear(
    weight: torch.Tensor, bias: torch.Tensor | None, pack: bool, switch: FourBitSwitch | None = None
) -> Linear:
    """x @ weight.T + bias; in bf16 with the weight reordered once for oneDNN (bit-identical, ~2x faster); and, given
    a switch and a weight that is exactly 4-bit (a Q4 GGUF's), the 4-bit form while the switch is on
    (int4_weights.py)."""
    weight = weight.detach().contiguous()
    bias = None if bias is None else bias.detach().contiguous()
    large = _make_bf16_linear(weight, bias, pack)
    small = exact_int4(weight) if switch is not None else None
    return large if small is None or switch is None else SplitLinear(small, large, bias, switch)


def _is_int4(linear: Linear) -> bool:
    return isinstance(linear, SplitLinear)


def _make_bf16_linear(weight: torch.Tensor, bias: torch.Tensor | None, pack: bool) -> Linear:
    if pack:
        try:
            packed = torch.ops.mkldnn._reorder_linear_weight(weight, 16)
            probe = torch.randn(3, weight.shape[1], dtype=weight.dtype)
            got = torch.ops.mkldnn._linear_pointwise(probe, packed, bias, "none", [], "")
            if torch.equal(got, F.linear(probe, weight, bias)):
                return lambda x: torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")
        except (RuntimeError, AttributeError):
            pass
    return lambda x: F.linear(x, weight, bias)


def _cat_bias(*modules: HFModel) -> torch.Tensor | None:
    biases = [m.bias for m in modules]
    if all(b is None for b in biases):
        return None
    return torch.cat(
        [
            b if b is not None else torch.zeros(m.out_features, dtype=m.weight.dtype)
            for b, m in zip(biases, modules, strict=True)
        ]
    )


@dataclass(frozen=True, slots=True)
class _Layer:
    input_norm: torch.Tensor
    qkv: Linear
    out: Linear
    post_norm: torch.Tensor
    gate_up: Linear
    down: Linear


@dataclass(frozen=True, slots=True)
class _StepIndex:
    """Per-step tensors shared by all layers."""

    token_ids: torch.Tensor  # [T] fed tokens, decodes first then prompt chunks
    cos: torch.Tensor  # [T, 1, head_dim]
    sin: torch.Tensor  # [T, 1, head_dim]
    cache_rows: torch.Tensor  # [T * kv_heads] rows of a layer's cache viewed as [slots*kv_heads*max_len, D]
    decodes: int  # the first `decodes` tokens are single-token decodes
    decode_slots: torch.Tensor | None  # [decodes] their slots; None when they are exactly slots 0..decodes-1
    decode_span: int  # slots 0..decode_span-1 cover every decoding slot
    decode_len: int  # keys attended: max length among decoding slots
    decode_mask: torch.Tensor | None  # [decode_span, 1, 1, decode_len] additive mask, model dtype
    prefills: tuple[tuple[int, int, int, int], ...]  # (offset in T, length, slot, start) per prompt chunk
    logits_rows: torch.Tensor  # [k] rows of T whose logits are returned, in entry order


class FastLlamaRunner:
    """ModelRunner for llama-layout models; see the module docstring. Takes the weights out of `model`."""

    name = "fast-llama"

    def __init__(self, model: HFModel, *, max_slots: int, max_model_len: int, int4_max_tokens: int = 0) -> None:
        config = model.config
        self.dtype_t = next(model.parameters()).dtype
        self.dtype = str(self.dtype_t).removeprefix("torch.")
        self.vocab_size = config.vocab_size
        self.num_heads = config.num_attention_heads
        self.num_kv_heads = config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.num_heads
        self.eps = config.rms_norm_eps
        self.max_slots = max_slots
        self.max_model_len = max_model_len
        pack = self.dtype_t == torch.bfloat16
        # Decode-only steps of up to int4_max_tokens sequences read 4-bit weights (bf16 only: fp32 stays the exact
        # reference). Prompt chunks never do, so a prompt's first token does not depend on how much of it the prefix
        # cache held.
        self._int4_max_tokens = int4_max_tokens if pack else 0
        self._four_bit = FourBitSwitch()
        decoder = model.model
        self.layers = [self._fuse(layer, pack) for layer in decoder.layers]
        self.embed = decoder.embed_tokens.weight.detach()
        self.final_norm = decoder.norm.weight.detach()
        self.lm_head = _make_linear(model.lm_head.weight, getattr(model.lm_head, "bias", None), pack)
        linears = [linear for layer in self.layers for linear in (layer.qkv, layer.out, layer.gate_up, layer.down)]
        self.int4_matrices = sum(1 for linear in linears if _is_int4(linear))  # matrices with a 4-bit form
        rotary = decoder.rotary_emb
        positions = torch.arange(max_model_len, dtype=torch.float32)
        freqs = torch.outer(positions, rotary.inv_freq.float())
        angles = torch.cat((freqs, freqs), dim=-1)
        self.cos = (angles.cos() * rotary.attention_scaling).to(self.dtype_t)
        self.sin = (angles.sin() * rotary.attention_scaling).to(self.dtype_t)
        shape = (len(self.layers), max_slots, self.num_kv_heads, max_model_len, self.head_dim)
        self.k_cache = torch.zeros(shape, dtype=self.dtype_t)
        self.v_cache = torch.zeros(shape, dtype=self.dtype_t)
        self.kv_cache_bytes = 2 * self.k_cache.numel() * self.k_cache.element_size()
        self.kv_bytes_per_token = self.kv_cache_bytes // (max_slots * max_model_len)
        self.scale = self.head_dim**-0.5

    def _fuse(self, layer: HFModel, pack: bool) -> _Layer:
        attn, mlp = layer.self_attn, layer.mlp
        qkv = torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight])
        gate_up = torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight])
        small = self._four_bit if self._int4_max_tokens > 0 else None
        return _Layer(
            input_norm=layer.input_layernorm.weight.detach(),
            qkv=_make_linear(qkv, _cat_bias(attn.q_proj, attn.k_proj, attn.v_proj), pack, small),
            out=_make_linear(attn.o_proj.weight, attn.o_proj.bias, pack, small),
            post_norm=layer.post_attention_layernorm.weight.detach(),
            gate_up=_make_linear(gate_up, _cat_bias(mlp.gate_proj, mlp.up_proj), pack, small),
            down=_make_linear(mlp.down_proj.weight, mlp.down_proj.bias, pack, small),
        )

    def release(self, slot: int) -> None:
        """Nothing to free: the slot's rows are overwritten by its next sequence and masked until then."""

    def read_kv(self, slot: int, start: int, length: int) -> torch.Tensor:
        """[2 (K, V), layers, kv_heads, length, head_dim], copied out of the slot (prefix caching)."""
        self._check_span(slot, start, length)
        end = start + length
        return torch.stack((self.k_cache[:, slot, :, start:end], self.v_cache[:, slot, :, start:end]))

    def write_kv(self, slot: int, start: int, kv: torch.Tensor) -> None:
        """Copy what read_kv returned into the slot at positions [start, start + length)."""
        length = kv.shape[3]
        self._check_span(slot, start, length)
        self.k_cache[:, slot, :, start : start + length].copy_(kv[0])
        self.v_cache[:, slot, :, start : start + length].copy_(kv[1])

    def _check_span(self, slot: int, start: int, length: int) -> None:
        if not 0 <= slot < self.max_slots or start < 0 or start + length > self.max_model_len:
            raise ValueError(f"K/V span outside the cache: slot {slot}, positions {start}..{start + length}")

    @torch.inference_mode()
    def forward(self, entries: Sequence[RunnerEntry]) -> torch.Tensor:
        index = self._index(entries)
        self._four_bit.on = not index.prefills and index.decodes <= self._int4_max_tokens
        x = self.embed.index_select(0, index.token_ids)
        for layer_no, layer in enumerate(self.layers):
            x = self._layer(layer_no, layer, x, index)
        x = F.rms_norm(x.index_select(0, index.logits_rows), (x.shape[-1],), self.final_norm, self.eps)
        return self.lm_head(x).float()

    def _layer(self, layer_no: int, layer: _Layer, x: torch.Tensor, index: _StepIndex) -> torch.Tensor:
        tokens, heads, kv_heads, dim = x.shape[0], self.num_heads, self.num_kv_heads, self.head_dim
        h = F.rms_norm(x, (x.shape[-1],), layer.input_norm, self.eps)
        qkv = layer.qkv(h).view(tokens, heads + 2 * kv_heads, dim)
        qk = qkv[:, : heads + kv_heads]
        half = dim // 2
        rotated = torch.cat((-qk[..., half:], qk[..., :half]), dim=-1)
        qk = qk * index.cos + rotated * index.sin
        q, k, v = qk[:, :heads], qk[:, heads:], qkv[:, heads + kv_heads :]
        k_rows = self.k_cache[layer_no].view(-1, dim)
        v_rows = self.v_cache[layer_no].view(-1, dim)
        k_rows.index_copy_(0, index.cache_rows, k.reshape(-1, dim))
        v_rows.index_copy_(0, index.cache_rows, v.reshape(-1, dim))
        parts = []
        if index.decodes:
            parts.append(self._decode_attention(layer_no, q[: index.decodes], index))
        for offset, length, slot, start in index.prefills:
            parts.append(self._prefill_attention(layer_no, q[offset : offset + length], slot, start))
        attn = parts[0] if len(parts) == 1 else torch.cat(parts)
        x = x + layer.out(attn)
        h = F.rms_norm(x, (x.shape[-1],), layer.post_norm, self.eps)
        gate_up = layer.gate_up(h)
        inner = gate_up.shape[-1] // 2
        return x + layer.down(F.silu(gate_up[:, :inner]) * gate_up[:, inner:])

    def _decode_attention(self, layer_no: int, q: torch.Tensor, index: _StepIndex) -> torch.Tensor:
        """q [B, heads, D] of single-token decodes → [B, heads*D]; one batched matmul over slots 0..span-1."""
        span, kv_heads, dim = index.decode_span, self.num_kv_heads, self.head_dim
        groups = self.num_heads // kv_heads
        if index.decode_slots is not None:
            q = torch.zeros(span, self.num_heads, dim, dtype=q.dtype).index_copy_(0, index.decode_slots, q)
        q = q.view(span, kv_heads, groups, dim)  # the group's query heads act as rows over one KV head
        keys = self.k_cache[layer_no, :span, :, : index.decode_len]
        values = self.v_cache[layer_no, :span, :, : index.decode_len]
        # SDPA reads the strided cache views in place (matmul would copy them every layer).
        out = F.scaled_dot_product_attention(q, keys, values, attn_mask=index.decode_mask, scale=self.scale)
        out = out.reshape(span, self.num_heads * dim)
        return out if index.decode_slots is None else out.index_select(0, index.decode_slots)

    def _prefill_attention(self, layer_no: int, q: torch.Tensor, slot: int, start: int) -> torch.Tensor:
        """q [n, heads, D] of a prompt chunk at positions start..start+n-1 → [n, heads*D] (causal)."""
        length = q.shape[0]
        keys = self.k_cache[layer_no, slot, :, : start + length].unsqueeze(0)
        values = self.v_cache[layer_no, slot, :, : start + length].unsqueeze(0)
        q = q.transpose(0, 1).unsqueeze(0)
        if start == 0:
            out = F.scaled_dot_product_attention(q, keys, values, is_causal=True, enable_gqa=True)
        else:
            allowed = torch.ones(length, start + length, dtype=torch.bool).tril(diagonal=start)
            out = F.scaled_dot_product_attention(q, keys, values, attn_mask=allowed, enable_gqa=True)
        return out[0].transpose(0, 1).reshape(length, self.num_heads * self.head_dim)

    def _index(self, entries: Sequence[RunnerEntry]) -> _StepIndex:
        for entry in entries:
            if not 0 <= entry.slot < self.max_slots or entry.start + len(entry.token_ids) > self.max_model_len:
                end = entry.start + len(entry.token_ids)
                raise ValueError(f"entry outside the cache: slot {entry.slot}, end {end}")
        decodes = [e for e in entries if len(e.token_ids) == 1 and e.start > 0]
        prefills = [e for e in entries if not (len(e.token_ids) == 1 and e.start > 0)]
        ordered = decodes + prefills
        token_ids: list[int] = []
        positions: list[int] = []
        slots: list[int] = []
        row_of: dict[int, int] = {}
        chunks = []
        for entry in ordered:
            n = len(entry.token_ids)
            if len(entry.token_ids) > 1 or entry.start == 0:
                chunks.append((len(token_ids), n, entry.slot, entry.start))
            row_of[id(entry)] = len(token_ids) + n - 1
            token_ids.extend(entry.token_ids)
            positions.extend(range(entry.start, entry.start + n))
            slots.extend([entry.slot] * n)
        positions_t = torch.tensor(positions, dtype=torch.long)
        slots_t = torch.tensor(slots, dtype=torch.long)
        kv = torch.arange(self.num_kv_heads, dtype=torch.long)
        rows = ((slots_t[:, None] * self.num_kv_heads + kv) * self.max_model_len + positions_t[:, None]).reshape(-1)
        decode_slots = None
        span = decode_len = 0
        mask = None
        if decodes:
            slot_list = [e.slot for e in decodes]
            span = max(slot_list) + 1
            if slot_list != list(range(span)):
                decode_slots = torch.tensor(slot_list, dtype=torch.long)
            lengths = torch.ones(span, dtype=torch.long)  # unused slots attend to position 0 (discarded)
            lengths[torch.tensor(slot_list)] = torch.tensor([e.start + 1 for e in decodes])
            decode_len = int(lengths.max())
            visible = torch.arange(decode_len)[None, :] < lengths[:, None]
            mask = torch.zeros(span, 1, 1, decode_len, dtype=self.dtype_t)
            mask.masked_fill_(~visible[:, None, None, :], float("-inf"))
        logits_rows = [row_of[id(e)] for e in entries if e.wants_logits]
        return _StepIndex(
            token_ids=torch.tensor(token_ids, dtype=torch.long),
            cos=self.cos.index_select(0, positions_t).unsqueeze(1),
            sin=self.sin.index_select(0, positions_t).unsqueeze(1),
            cache_rows=rows,
            decodes=len(decodes),
            decode_slots=decode_slots,
            decode_span=span,
            decode_len=decode_len,
            decode_mask=mask,
            prefills=tuple(chunks),
            logits_rows=torch.tensor(logits_rows, dtype=torch.long),
        )
