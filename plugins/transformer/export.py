"""The Transformer as a ``decoder`` graph of the torch-free runtime: explicit past
and present keys/values per layer, attention mask and position ids (optimum's
names), so batched prompts of different lengths (right-padded) and every decode
step run through one graph."""

from __future__ import annotations

import math

import torch
from torch import nn

from .nets import GPT, apply_rope


class DecoderGraph(nn.Module):
    """``(input_ids, attention_mask, position_ids, *past) -> (logits, *present)``
    over a trained :class:`GPT` (the same weights, the same arithmetic)."""

    def __init__(self, gpt: GPT) -> None:
        super().__init__()
        self.gpt = gpt

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
