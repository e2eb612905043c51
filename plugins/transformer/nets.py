"""A decoder-only Transformer (pure ``nn.Module``): pre-norm blocks, causal attention
through ``scaled_dot_product_attention``, tied embeddings, learned or rotary
positions, and a key/value cache for generation."""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


@dataclasses.dataclass(frozen=True)
class GPTShape:
    """The architecture (nanoGPT's GPTConfig): what is needed to rebuild the model."""

    vocab_size: int
    context: int
    n_layer: int
    n_head: int
    n_embd: int
    dropout: float = 0.0
    bias: bool = False
    positions: str = "learned"  # or "rope"


def rope_tables(head_dim: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables (length, head_dim / 2) of rotary positions (base 10000)."""
    inv = 1.0 / (10000 ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    ang = torch.arange(length, dtype=torch.float32)[:, None] * inv[None, :]
    return torch.cos(ang), torch.sin(ang)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (first half, second half) of ``x`` (..., T, D) by the tables (T, D/2)."""
    a, b = x.chunk(2, dim=-1)
    return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)


def _times(x: torch.Tensor, w_t: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``x @ w_t (+ bias)``: a linear layer given its weight as (in, out)."""
    y = torch.matmul(x, w_t)
    return y if bias is None else y + bias


class KVCache:
    """Keys and values of every layer, (B, H, capacity, D) each, and each row's length."""

    def __init__(self, k: list[torch.Tensor], v: list[torch.Tensor], lens: torch.Tensor) -> None:
        self.k = k
        self.v = v
        self.lens = lens  # (B,) int64: filled slots per row

    @property
    def capacity(self) -> int:
        """Slots per row."""
        return int(self.k[0].shape[2])

    def select(self, rows: torch.Tensor) -> KVCache:
        """The cache of some rows."""
        return KVCache([t[rows] for t in self.k], [t[rows] for t in self.v],
                       self.lens[rows.cpu()])

    @staticmethod
    def cat(caches: list[KVCache]) -> KVCache:
        """Caches joined along the batch."""
        n = len(caches[0].k)
        return KVCache([torch.cat([c.k[i] for c in caches]) for i in range(n)],
                       [torch.cat([c.v[i] for c in caches]) for i in range(n)],
                       torch.cat([c.lens for c in caches]))


class Attention(nn.Module):
    """Multi-head causal self-attention."""

    def __init__(self, s: GPTShape) -> None:
        super().__init__()
        self.n_head = s.n_head
        self.head_dim = s.n_embd // s.n_head
        self.qkv = nn.Linear(s.n_embd, 3 * s.n_embd, bias=s.bias)
        self.proj = nn.Linear(s.n_embd, s.n_embd, bias=s.bias)
        self.dropout = s.dropout
        self.resid_drop = nn.Dropout(s.dropout)

    def _heads(self, qkv: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v (B, H, T, D) of a qkv projection (B, T, 3C), rotary positions applied
        to q and k in one pass over both (half the operations of one pass each)."""
        b, t, _ = qkv.shape
        h = qkv.view(b, t, 3, self.n_head, self.head_dim).permute(2, 0, 3, 1, 4)
        if rope is None:
            q, k, v = h.unbind(0)
            return q, k, v
        q, k = apply_rope(h[:2], *rope).unbind(0)
        return q, k, h[2]

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self._heads(self.qkv(x), rope)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=self.dropout if self.training else 0.0)
        out: torch.Tensor = self.resid_drop(self.proj(y.transpose(1, 2).reshape(b, t, c)))
        return out

    def prefill(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Like forward (eval), also returning this layer's keys and values (B, H, T, D)."""
        b, t, c = x.shape
        q, k, v = self._heads(self.qkv(x), rope)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, t, c)), k, v

    def step(self, x: torch.Tensor, kc: torch.Tensor, vc: torch.Tensor, lens: torch.Tensor,
             same: int, rope: tuple[torch.Tensor, torch.Tensor] | None,
             qkv_t: torch.Tensor) -> torch.Tensor:
        """One new token per row (x: (B, 1, C)), written at slot ``lens[b]`` of the cache;
        ``qkv_t``: the qkv weight as (in, out) (see :meth:`GPT.step_weights`).

        ``same`` >= 0: every row has that length (no mask needed)."""
        b = x.shape[0]
        q, k, v = self._heads(_times(x, qkv_t, self.qkv.bias), rope)
        if same >= 0:
            kc[:, :, same] = k[:, :, 0]
            vc[:, :, same] = v[:, :, 0]
            y = F.scaled_dot_product_attention(q, kc[:, :, :same + 1], vc[:, :, :same + 1])
        else:
            rows = torch.arange(b, device=kc.device)
            at = lens.to(kc.device)
            kc[rows, :, at] = k[:, :, 0]
            vc[rows, :, at] = v[:, :, 0]
            top = int(lens.max()) + 1
            mask = torch.arange(top)[None, :] <= lens[:, None]
            y = F.scaled_dot_product_attention(q, kc[:, :, :top], vc[:, :, :top],
                                               attn_mask=mask[:, None, None, :].to(x.device))
        out: torch.Tensor = F.linear(y.transpose(1, 2).reshape(b, 1, -1), self.proj.weight,
                                     self.proj.bias)
        return out


class MLP(nn.Module):
    """Two layers with a 4x wider GELU middle."""

    def __init__(self, s: GPTShape) -> None:
        super().__init__()
        self.fc = nn.Linear(s.n_embd, 4 * s.n_embd, bias=s.bias)
        self.proj = nn.Linear(4 * s.n_embd, s.n_embd, bias=s.bias)
        self.drop = nn.Dropout(s.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.drop(self.proj(F.gelu(self.fc(x))))
        return out


class Block(nn.Module):
    """Pre-norm: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, s: GPTShape) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(s.n_embd, bias=s.bias)
        self.attn = Attention(s)
        self.ln2 = nn.LayerNorm(s.n_embd, bias=s.bias)
        self.mlp = MLP(s)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), rope)
        out: torch.Tensor = x + self.mlp(self.ln2(x))
        return out


class GPT(nn.Module):
    """The decoder: token (+ learned position) embeddings, blocks, a final norm and the
    tied output layer. ``forward(idx)`` gives logits (B, T, V) for training and
    scoring; :meth:`prefill` and :meth:`step` run generation with a :class:`KVCache`."""

    def __init__(self, s: GPTShape) -> None:
        super().__init__()
        if s.n_embd % s.n_head:
            raise ValueError(f"n_embd={s.n_embd} is not a multiple of n_head={s.n_head}")
        self.shape = s
        self.wte = nn.Embedding(s.vocab_size, s.n_embd)
        self.wpe = nn.Embedding(s.context, s.n_embd) if s.positions == "learned" else None
        self.drop = nn.Dropout(s.dropout)
        self.blocks = nn.ModuleList(Block(s) for _ in range(s.n_layer))
        self._blocks: list[Block] = [typing.cast(Block, b) for b in self.blocks]
        self._fast: tuple[tuple[tuple[int, int], ...], list[tuple[Any, ...]]] | None = None
        self.ln_f = nn.LayerNorm(s.n_embd, bias=s.bias)
        self.head = nn.Linear(s.n_embd, s.vocab_size, bias=False)
        self.head.weight = self.wte.weight  # tied
        cos, sin = rope_tables(s.n_embd // s.n_head, s.context)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(self._init)
        for name, p in self.named_parameters():
            if name.endswith("proj.weight"):  # GPT-2's scaled residual projections
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * s.n_layer))

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)

    def step_weights(self) -> list[tuple[Any, ...]]:
        """Per block, what a generation step reads: the norms' parameters, the qkv
        and MLP-in weights as (in, out) matrices, the MLP's biases and out weight.

        On the CPU the two (in, out) matrices are contiguous copies: MKL's product
        of one row with a (out, in) weight (``F.linear``) is slower than with its
        transpose when out > in, and these two are 3x and 4x wider than they are
        tall (a 10 M-parameter GPT step: 110 -> 129 tokens/s, one thread; the
        copies take 2 x 4 x n_embd^2 floats per block). They are made again
        whenever a weight changes (training, ``load_state_dict``, ``.to``)."""
        key = tuple((w._version, w.data_ptr()) for b in self._blocks
                    for w in (b.attn.qkv.weight, b.mlp.fc.weight))
        if self._fast is None or self._fast[0] != key:
            def lay(w: torch.Tensor) -> torch.Tensor:
                t = w.detach().t()
                return t.contiguous() if t.device.type == "cpu" else t

            self._fast = (key, [(b.ln1.weight, b.ln1.bias, b.ln2.weight, b.ln2.bias,
                                 lay(b.attn.qkv.weight), lay(b.mlp.fc.weight), b.mlp.fc.bias,
                                 b.mlp.proj.weight, b.mlp.proj.bias) for b in self._blocks])
        return self._fast[1]

    def _rope(self, start: int, length: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        if self.wpe is not None:
            return None
        cos: torch.Tensor = self.rope_cos  # type: ignore[assignment]
        sin: torch.Tensor = self.rope_sin  # type: ignore[assignment]
        return cos[start:start + length], sin[start:start + length]

    def _embed(self, idx: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        x: torch.Tensor = self.wte(idx)
        if self.wpe is not None:
            x = x + self.wpe(pos)
        return x

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        t = idx.shape[1]
        if t > self.shape.context:
            raise ValueError(f"sequence of {t} tokens is longer than the context "
                             f"{self.shape.context}")
        x = self.drop(self._embed(idx, torch.arange(t, device=idx.device)))
        rope = self._rope(0, t)
        for block in self._blocks:
            x = block(x, rope)
        out: torch.Tensor = self.head(self.ln_f(x))
        return out

    @torch.no_grad()
    def prefill(self, idx: torch.Tensor, capacity: int) -> tuple[torch.Tensor, KVCache]:
        """Logits after the last token of each row of ``idx`` (B, T), and a cache of
        ``capacity`` slots per row holding the T positions."""
        b, t = idx.shape
        x = self._embed(idx, torch.arange(t, device=idx.device))
        rope = self._rope(0, t)
        ks, vs = [], []
        h, d = self.shape.n_head, self.shape.n_embd // self.shape.n_head
        for block in self._blocks:
            y, k, v = block.attn.prefill(block.ln1(x), rope)
            x = x + y
            x = x + block.mlp(block.ln2(x))
            kc = torch.zeros(b, h, capacity, d, dtype=k.dtype, device=k.device)
            vc = torch.zeros_like(kc)
            kc[:, :, :t] = k
            vc[:, :, :t] = v
            ks.append(kc)
            vs.append(vc)
        logits = self.head(self.ln_f(x[:, -1]))
        return logits, KVCache(ks, vs, torch.full((b,), t, dtype=torch.int64))

    @torch.no_grad()
    def step(self, tokens: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """Logits (B, V) after one more token per row; the cache grows by one slot per row
        (every row must have a free slot)."""
        lens = cache.lens
        lmin, lmax = int(lens.min()), int(lens.max())
        same = lmin if lmin == lmax else -1
        dev = tokens.device
        if self.wpe is not None:
            x = self.wte(tokens)[:, None] + self.wpe(lens.to(dev))[:, None]
            rope = None
        elif same >= 0:
            x = self.wte(tokens)[:, None]
            rope = self._rope(same, 1)
        else:
            x = self.wte(tokens)[:, None]
            cos: torch.Tensor = self.rope_cos  # type: ignore[assignment]
            sin: torch.Tensor = self.rope_sin  # type: ignore[assignment]
            ld = lens.to(dev)
            rope = (cos[ld][:, None, None, :], sin[ld][:, None, None, :])
        n = self.shape.n_embd
        for i, (block, w) in enumerate(zip(self._blocks, self.step_weights(), strict=True)):
            h = F.layer_norm(x, (n,), w[0], w[1])
            x = x + block.attn.step(h, cache.k[i], cache.v[i], lens, same, rope, w[4])
            h = F.layer_norm(x, (n,), w[2], w[3])
            x = x + F.linear(F.gelu(_times(h, w[5], w[6])), w[7], w[8])
        cache.lens = lens + 1
        out: torch.Tensor = self.head(self.ln_f(x[:, 0]))
        return out
