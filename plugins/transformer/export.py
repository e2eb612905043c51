"""The Transformer as a ``decoder`` graph of the torch-free runtime: explicit past
and present keys/values per layer, attention mask and position ids (optimum's
names), so batched prompts of different lengths (right-padded) and every decode
step run through one graph."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .nets import GPT, apply_rope


class _GroupQueryAttention(torch.autograd.Function):
    """onnxruntime's ``com.microsoft.GroupQueryAttention`` (all heads their own
    key/value head), for export only: the graph gets the fused op, whose cache
    layout is right-padded (row ``b``'s keys in slots ``0 .. seqlens_k[b]``) and
    which updates ``past`` in place when ``present`` is bound to the same buffer.
    ``forward`` gives the traced shapes (a plain attention over past + new)."""

    @staticmethod
    def forward(ctx: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                past_k: torch.Tensor, past_v: torch.Tensor, seqlens_k: torch.Tensor,
                total: torch.Tensor, heads: int) -> tuple[torch.Tensor, ...]:
        b, t, hd = q.shape
        d = hd // heads

        def split(x: torch.Tensor) -> torch.Tensor:
            return x.view(b, t, heads, d).transpose(1, 2)

        kk = torch.cat([past_k, split(k)], dim=2)
        vv = torch.cat([past_v, split(v)], dim=2)
        y = torch.softmax(split(q) @ kk.transpose(-2, -1) / math.sqrt(d), dim=-1) @ vv
        return y.transpose(1, 2).reshape(b, t, hd), kk, vv

    @staticmethod
    def symbolic(g: Any, q: Any, k: Any, v: Any, past_k: Any, past_v: Any, seqlens_k: Any,
                 total: Any, heads: int) -> Any:
        out = g.op("com.microsoft::GroupQueryAttention", q, k, v, past_k, past_v, seqlens_k,
                   total, num_heads_i=heads, kv_num_heads_i=heads, outputs=3)
        # Output types for the exporter's shape inference (onnxruntime infers its own).
        out[0].setType(q.type())
        for o, src in zip(out[1:], (past_k, past_v), strict=True):
            o.setType(src.type().with_sizes([None] * 4))
        return out


class DecoderGraph(nn.Module):
    """``(input_ids, attention_mask, position_ids, *past) -> (logits, *present)``
    over a trained :class:`GPT` (the same weights, the same arithmetic).

    ``fused``: attention by onnxruntime's GroupQueryAttention (genai's own layout:
    right-padded, ``attention_mask`` marks each row's first tokens), so a runtime
    that binds ``present`` to ``past``'s buffer never copies the cache; else plain
    ONNX operators (``present = past + new``, any padding the mask describes)."""

    def __init__(self, gpt: GPT, *, fused: bool = False) -> None:
        super().__init__()
        self.gpt = gpt
        self.fused = fused

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                position_ids: torch.Tensor, *past: torch.Tensor) -> tuple[torch.Tensor, ...]:
        g = self.gpt
        s = g.shape
        b, t = input_ids.shape
        p = past[0].shape[2]
        x = g.wte(input_ids)
        rope = None
        if g.wpe is not None:
            x = x + g.wpe(position_ids)
        else:
            cos: torch.Tensor = g.rope_cos  # type: ignore[assignment]
            sin: torch.Tensor = g.rope_sin  # type: ignore[assignment]
            rope = (cos[position_ids][:, None], sin[position_ids][:, None])  # (B, 1, T, D/2)
        if self.fused:
            return self._fused(x, attention_mask, rope, past)
        # Query i (at absolute slot p + i) sees slots j <= p + i that are real; it also
        # sees itself, so a padding query is never fully masked (its output is unused).
        j = torch.arange(p + t, device=input_ids.device)
        i = torch.arange(t, device=input_ids.device) + p
        causal = j[None, :] <= i[:, None]
        own = j[None, :] == i[:, None]
        allowed = (causal[None] & attention_mask[:, None, :].bool()) | own[None]
        mask = allowed[:, None]  # (B, 1, T, P + T)
        presents: list[torch.Tensor] = []
        h, d = s.n_head, s.n_embd // s.n_head
        for li, block in enumerate(g._blocks):
            a = block.attn
            q, k, v = a.qkv(block.ln1(x)).view(b, t, 3, h, d).permute(2, 0, 3, 1, 4).unbind(0)
            if rope is not None:
                q, k = apply_rope(q, *rope), apply_rope(k, *rope)
            k = torch.cat([past[2 * li], k], dim=2)
            v = torch.cat([past[2 * li + 1], v], dim=2)
            presents += [k, v]
            # Attention written out (not scaled_dot_product_attention): the exporter
            # scales q and k both by sqrt(scale) and transposes k separately, a pass over
            # the whole cache each; here only q is scaled and onnxruntime fuses the
            # transpose into the MatMul.
            att = torch.matmul(q * (1.0 / math.sqrt(d)), k.transpose(-2, -1))
            y = torch.matmul(torch.softmax(att.masked_fill(~mask, float("-inf")), dim=-1), v)
            x = x + a.proj(y.transpose(1, 2).reshape(b, t, s.n_embd))
            x = x + block.mlp(block.ln2(x))
        return (g.head(g.ln_f(x)), *presents)

    def _fused(self, x: torch.Tensor, attention_mask: torch.Tensor,
               rope: tuple[torch.Tensor, torch.Tensor] | None, past: tuple[torch.Tensor, ...]
               ) -> tuple[torch.Tensor, ...]:
        g = self.gpt
        s = g.shape
        b, t, _ = x.shape
        h, d = s.n_head, s.n_embd // s.n_head
        # genai's convention: the mask's ones are each row's tokens, first slot on.
        seqlens_k = (attention_mask.sum(dim=1) - 1).to(torch.int32)
        total = torch.tensor(attention_mask.shape[1], dtype=torch.int32)
        presents: list[torch.Tensor] = []
        for li, block in enumerate(g._blocks):
            a = block.attn
            q, k, v = a.qkv(block.ln1(x)).view(b, t, 3, h, d).permute(2, 0, 3, 1, 4).unbind(0)
            if rope is not None:
                q, k = apply_rope(q, *rope), apply_rope(k, *rope)

            def flat(z: torch.Tensor) -> torch.Tensor:
                return z.transpose(1, 2).reshape(b, t, s.n_embd)

            y, pk, pv = _GroupQueryAttention.apply(  # type: ignore[no-untyped-call]
                flat(q), flat(k), flat(v), past[2 * li], past[2 * li + 1], seqlens_k, total, h)
            presents += [pk, pv]
            x = x + a.proj(y)
            x = x + block.mlp(block.ln2(x))
        return (g.head(g.ln_f(x)), *presents)
