"""The ``transformer`` generator: a decoder-only Transformer trained on your text,
generating through the engine's decoding loop with a key/value cache.

**Long prompts and long generations (the sliding window).** The model sees at
most ``context`` tokens. A prompt (with its start token) longer than that is
cut to its last ``keep = context - context // 4`` tokens; when a sequence's
cache is full, the sequence is re-encoded from its last ``keep`` tokens (one
prefill), so the model always conditions on at least ``keep`` and at most
``context`` preceding tokens, and the cost per token stays bounded (one
re-encoding every ``context // 4`` tokens). Logits are exact for that window:
they equal a full recomputation of the model on it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from aigc_engine.plugin_api import ConfigError, GeneratorConfig, Tokenizer, TokenModel
from aigc_engine.textlm import NeuralTextConfig, NeuralTextGenerator

from .nets import GPT, GPTShape, KVCache


@dataclasses.dataclass(frozen=True)
class TransformerConfig(NeuralTextConfig):
    """The ``transformer`` generator: architecture ``n_layer``, ``n_head``, ``n_embd``,
    ``context`` (tokens the model sees), ``dropout``, ``bias`` (in linear layers and
    norms), ``positions`` ("learned" or "rope"); the tokenizer; and the training
    options of :class:`aigc_engine.training.TrainConfig` (not saved with the model).

    The defaults are the best recipe measured for a character model on a 2-core
    CPU within 600 s (``max_seconds=600``; see ``docs/text_models.md``): nanoGPT's
    "baby" shape (4 layers, 4 heads, 128 dims) with a 128-token context, rotary
    positions and ``lr`` 4e-3 (to ``min_lr`` 1e-4)."""

    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    context: int = 128
    dropout: float = 0.0
    bias: bool = False
    positions: Literal["learned", "rope"] = "rope"
    lr: float = dataclasses.field(default=4e-3, compare=False, metadata={"training": True})

    def validate(self) -> None:
        super().validate()
        for name in ("n_layer", "n_head", "n_embd", "context"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.n_embd % self.n_head:
            raise ConfigError(f"n_embd={self.n_embd} must be a multiple of n_head={self.n_head}")
        if (self.n_embd // self.n_head) % 2 and self.positions == "rope":
            raise ConfigError("positions=rope needs an even head size (n_embd / n_head)")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.window > self.context:
            raise ConfigError(f"window={self.window} is longer than context={self.context}")


class _State:
    """The batch's cache and, per row, the tokens it holds (for the sliding window)."""

    def __init__(self, cache: KVCache, ids: list[list[int]]) -> None:
        self.cache = cache
        self.ids = ids


class TransformerTokenModel(TokenModel):
    """Prefill and step with a key/value cache; the sliding window of the module docstring."""

    def __init__(self, net: GPT, tokenizer: Tokenizer, device: torch.device) -> None:
        self.net = net.eval()
        self._tok = tokenizer
        self.device = device
        self.context = net.shape.context
        self.keep = max(1, self.context - self.context // 4)
        self.start = tokenizer.eos_id if tokenizer.eos_id is not None else 0

    @property
    def tokenizer(self) -> Tokenizer:
        return self._tok

    def _out(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.float().contiguous()

    def _encode(self, rows: list[list[int]]) -> tuple[torch.Tensor, KVCache]:
        """Prefill distinct rows once each (batched by length); logits and cache per row."""
        index: dict[tuple[int, ...], int] = {}
        order = [index.setdefault(tuple(r), len(index)) for r in rows]
        uniq = list(index)
        by_len: dict[int, list[int]] = {}
        for u, r in enumerate(uniq):
            by_len.setdefault(len(r), []).append(u)
        logits: list[torch.Tensor] = [torch.empty(0)] * len(uniq)
        caches: list[KVCache] = []
        pos = [0] * len(uniq)
        for _, members in by_len.items():
            idx = torch.tensor([uniq[u] for u in members], dtype=torch.int64, device=self.device)
            lg, cache = self.net.prefill(idx, self.context)
            for j, u in enumerate(members):
                logits[u] = lg[j]
                pos[u] = sum(len(c.lens) for c in caches) + j
            caches.append(cache)
        allc = caches[0] if len(caches) == 1 else KVCache.cat(caches)
        pick = torch.tensor([pos[u] for u in order], dtype=torch.int64)
        if len(order) == len(uniq) and pick.tolist() == list(range(len(uniq))):
            cache = allc
        else:
            cache = allc.select(pick.to(allc.k[0].device))
        return torch.stack([logits[u] for u in order]), cache

    def prefill(self, prompts: Sequence[Sequence[int]]) -> tuple[Any, Any]:
        rows = []
        for p in prompts:
            r = [self.start, *(int(t) for t in p)]
            rows.append(r[-self.keep:] if len(r) > self.context else r)
        logits, cache = self._encode(rows)
        return self._out(logits), _State(cache, rows)

    def step(self, tokens: np.ndarray, state: Any) -> tuple[Any, Any]:
        st: _State = state
        for r, t in zip(st.ids, tokens.tolist(), strict=True):
            r.append(t)
        full = (st.cache.lens >= self.context).nonzero().flatten().tolist()
        tok = torch.from_numpy(np.ascontiguousarray(tokens, dtype=np.int64)).to(self.device)
        if not full:
            return self._out(self.net.step(tok, st.cache)), st
        b = len(st.ids)
        rest = [i for i in range(b) if i not in set(full)]
        for i in full:
            st.ids[i] = st.ids[i][-self.keep:]
        slid_logits, slid_cache = self._encode([st.ids[i] for i in full])
        if not rest:
            st.cache = slid_cache
            return self._out(slid_logits), st
        rest_t = torch.tensor(rest, dtype=torch.int64)
        sub = st.cache.select(rest_t.to(st.cache.k[0].device))
        rest_logits = self.net.step(tok[rest_t.to(tok.device)], sub)
        joined = KVCache.cat([sub, slid_cache])
        order = torch.empty(b, dtype=torch.int64)
        order[torch.tensor(rest + full, dtype=torch.int64)] = torch.arange(b)
        st.cache = joined.select(order.to(joined.k[0].device))
        logits = torch.cat([rest_logits, slid_logits])[order.to(rest_logits.device)]
        return self._out(logits), st

    def select(self, state: Any, rows: np.ndarray) -> Any:
        st: _State = state
        idx = torch.from_numpy(np.ascontiguousarray(rows, dtype=np.int64))
        return _State(st.cache.select(idx.to(st.cache.k[0].device)),
                      [st.ids[int(i)] for i in rows])

    def concat(self, states: Sequence[Any]) -> Any:
        sts: list[_State] = list(states)
        return _State(KVCache.cat([s.cache for s in sts]), [r for s in sts for r in s.ids])


class TransformerGenerator(NeuralTextGenerator):
    """A decoder-only Transformer language model (pre-norm, SDPA causal attention, tied
    embeddings, KV cache), on a char, byte or BPE tokenizer."""

    name: ClassVar[str] = "transformer"
    config_class: ClassVar[type[GeneratorConfig]] = TransformerConfig

    @property
    def cfg(self) -> TransformerConfig:
        """The config, typed."""
        return self.config_as(TransformerConfig)

    def shape(self, vocab_size: int) -> GPTShape:
        """The network's shape for a vocabulary."""
        c = self.cfg
        return GPTShape(vocab_size=vocab_size, context=c.context, n_layer=c.n_layer,
                        n_head=c.n_head, n_embd=c.n_embd, dropout=c.dropout, bias=c.bias,
                        positions=c.positions)

    def build(self, vocab_size: int) -> torch.nn.Module:
        return GPT(self.shape(vocab_size))

    def train_window(self) -> int:
        return self.cfg.window or self.cfg.context

    @property
    def gpt(self) -> GPT:
        """The network (after fit or load)."""
        self.require_trained("use")
        assert isinstance(self.net, GPT)
        return self.net

    def make_token_model(self) -> TokenModel:
        return TransformerTokenModel(self.gpt, self.tokenizer, self.device)

    def onnx_graph(self) -> tuple[torch.nn.Module, Any]:
        """A ``decoder`` graph with the same sliding window as generation here."""
        from aigc_engine.runtime.text import OnnxTextConfig

        from .export import DecoderGraph

        g = self.gpt
        s = g.shape
        tok = self.tokenizer
        cfg = OnnxTextConfig(kind="decoder", n_layer=s.n_layer, n_head=s.n_head,
                             head_dim=s.n_embd // s.n_head, vocab_size=s.vocab_size,
                             context=s.context, keep=max(1, s.context - s.context // 4),
                             start_id=tok.eos_id if tok.eos_id is not None else 0,
                             source=self.name, shared_cache=True)
        return DecoderGraph(g, fused=True), cfg

    def score(self, ids: torch.Tensor) -> float:
        """Sliding windows of ``context`` tokens with stride ``context // 2``: the first
        window scores all its targets, each later one its last ``stride`` targets, so
        every token after the first window is predicted from at least half a context."""
        net = self.gpt.eval()
        c = net.shape.context
        n = len(ids)
        if n <= c + 1:
            x = ids[None, :-1].to(self.device)
            return float(torch.nn.functional.cross_entropy(
                net(x)[0].float(), ids[1:].to(self.device), reduction="sum"))
        stride = max(1, c // 2)
        starts = list(range(0, n - 1 - c + 1, stride))
        if starts[-1] + c < n - 1:
            starts.append(n - 1 - c)
        total = 0.0
        scored = 0  # targets up to this index (exclusive) have been scored
        offsets = torch.arange(c + 1)
        batch = 32
        for i in range(0, len(starts), batch):
            st = torch.tensor(starts[i:i + batch])
            rows = ids[st[:, None] + offsets[None, :]].to(self.device)
            logp = torch.log_softmax(net(rows[:, :-1]).float(), dim=-1)
            nll = -logp.gather(-1, rows[:, 1:, None])[..., 0].cpu()
            for j, s in enumerate(starts[i:i + batch]):
                first = max(scored, s + 1) - (s + 1)  # skip targets already scored
                total += float(nll[j, first:].sum())
                scored = s + 1 + c
        return total
