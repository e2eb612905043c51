"""The ``lstm`` generator: a multi-layer LSTM language model.

The recurrent state is carried across generation steps, so a prompt of any
length is read whole (no window). Training uses windows of ``window`` tokens
from a zero state (the state is not carried across training windows).
Evaluation reads the text as 32 contiguous streams, each carrying its state
from its start.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from aigc_engine.plugin_api import ConfigError, GeneratorConfig, Tokenizer, TokenModel
from aigc_engine.textlm import NeuralTextConfig, NeuralTextGenerator

State = tuple[torch.Tensor, torch.Tensor]


class LSTMNet(nn.Module):
    """Embedding, dropout, ``nn.LSTM``, dropout, (projection,) output layer
    (tied to the embedding when ``tie``; a projection maps hidden to embedding
    size when they differ)."""

    def __init__(self, *, vocab_size: int, n_embd: int, hidden: int, n_layer: int,
                 dropout: float, tie: bool) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab_size, n_embd)
        self.drop = nn.Dropout(dropout)
        self.lstm = nn.LSTM(n_embd, hidden, n_layer, batch_first=True,
                            dropout=dropout if n_layer > 1 else 0.0)
        self.proj = nn.Linear(hidden, n_embd, bias=False) if tie and hidden != n_embd else None
        self.head = nn.Linear(n_embd if tie else hidden, vocab_size)
        if tie:
            self.head.weight = self.emb.weight
        nn.init.normal_(self.emb.weight, std=0.05)

    def run(self, idx: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """Logits (B, T, V) and the state after the last token."""
        y, st = self.lstm(self.drop(self.emb(idx)), state)
        y = self.drop(y)
        if self.proj is not None:
            y = self.proj(y)
        return self.head(y), (st[0], st[1])

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.run(idx)[0]


@dataclasses.dataclass(frozen=True)
class LSTMConfig(NeuralTextConfig):
    """The ``lstm`` generator: ``n_layer`` LSTM layers of ``hidden`` units over
    ``n_embd``-wide embeddings, ``dropout`` (between layers and around the LSTM),
    ``tie`` (output layer tied to the embedding); the tokenizer; and the training
    options of :class:`aigc_engine.training.TrainConfig` (``window`` = tokens per
    training window, default 64; here ``lr`` defaults to 3e-3 and ``batch_size`` to
    16; not saved with the model)."""

    n_layer: int = 2
    n_embd: int = 128
    hidden: int = 256
    dropout: float = 0.0
    tie: bool = True
    lr: float = dataclasses.field(default=3e-3, compare=False, metadata={"training": True})
    batch_size: int = dataclasses.field(default=16, compare=False, metadata={"training": True})

    def validate(self) -> None:
        super().validate()
        for name in ("n_layer", "n_embd", "hidden"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")


class LSTMTokenModel(TokenModel):
    """Prefill reads each prompt whole; step feeds one token per row; state (h, c)."""

    def __init__(self, net: LSTMNet, tokenizer: Tokenizer, device: torch.device) -> None:
        self.net = net.eval()
        self._tok = tokenizer
        self.device = device
        self.start = tokenizer.eos_id if tokenizer.eos_id is not None else 0

    @property
    def tokenizer(self) -> Tokenizer:
        return self._tok

    @torch.no_grad()
    def prefill(self, prompts: Sequence[Sequence[int]]) -> tuple[Any, Any]:
        rows = [[self.start, *(int(t) for t in p)] for p in prompts]
        index: dict[tuple[int, ...], int] = {}
        order = [index.setdefault(tuple(r), len(index)) for r in rows]
        uniq = list(index)
        logits: list[torch.Tensor] = [torch.empty(0)] * len(uniq)
        hs: list[torch.Tensor] = [torch.empty(0)] * len(uniq)
        cs: list[torch.Tensor] = [torch.empty(0)] * len(uniq)
        by_len: dict[int, list[int]] = {}
        for u, r in enumerate(uniq):
            by_len.setdefault(len(r), []).append(u)
        for _, members in by_len.items():
            idx = torch.tensor([uniq[u] for u in members], dtype=torch.int64, device=self.device)
            lg, (h, c) = self.net.run(idx)
            for j, u in enumerate(members):
                logits[u], hs[u], cs[u] = lg[j, -1], h[:, j], c[:, j]
        out = torch.stack([logits[u] for u in order]).float().contiguous()
        state = (torch.stack([hs[u] for u in order], dim=1).contiguous(),
                 torch.stack([cs[u] for u in order], dim=1).contiguous())
        return out, state

    @torch.no_grad()
    def step(self, tokens: np.ndarray, state: Any) -> tuple[Any, Any]:
        tok = torch.from_numpy(np.ascontiguousarray(tokens, dtype=np.int64)).to(self.device)
        lg, st = self.net.run(tok[:, None], state)
        return lg[:, 0].float().contiguous(), st

    def select(self, state: Any, rows: np.ndarray) -> Any:
        h, c = state
        idx = torch.from_numpy(np.ascontiguousarray(rows, dtype=np.int64)).to(h.device)
        return h[:, idx].contiguous(), c[:, idx].contiguous()

    def concat(self, states: Sequence[Any]) -> Any:
        return (torch.cat([s[0] for s in states], dim=1), torch.cat([s[1] for s in states], dim=1))


class LSTMGenerator(NeuralTextGenerator):
    """A multi-layer LSTM language model on a char, byte or BPE tokenizer."""

    name: ClassVar[str] = "lstm"
    config_class: ClassVar[type[GeneratorConfig]] = LSTMConfig
    #: Evaluation streams and the chunk each stream reads at a time.
    eval_streams: ClassVar[int] = 32
    eval_chunk: ClassVar[int] = 512

    @property
    def cfg(self) -> LSTMConfig:
        """The config, typed."""
        return self.config_as(LSTMConfig)

    def build(self, vocab_size: int) -> torch.nn.Module:
        c = self.cfg
        return LSTMNet(vocab_size=vocab_size, n_embd=c.n_embd, hidden=c.hidden,
                       n_layer=c.n_layer, dropout=c.dropout, tie=c.tie)

    def train_window(self) -> int:
        return self.cfg.window or 64

    @property
    def lstm(self) -> LSTMNet:
        """The network (after fit or load)."""
        self.require_trained("use")
        assert isinstance(self.net, LSTMNet)
        return self.net

    def make_token_model(self) -> TokenModel:
        return LSTMTokenModel(self.lstm, self.tokenizer, self.device)

    def onnx_graph(self) -> tuple[torch.nn.Module, Any]:
        """A ``recurrent`` graph (state in and out; no window: the state carries all)."""
        from aigc_engine.runtime.text import OnnxTextConfig

        from .export import RecurrentGraph

        c = self.cfg
        tok = self.tokenizer
        cfg = OnnxTextConfig(kind="recurrent", n_layer=c.n_layer, hidden=c.hidden,
                             vocab_size=tok.vocab_size,
                             start_id=tok.eos_id if tok.eos_id is not None else 0,
                             source=self.name, eval_streams=self.eval_streams,
                             eval_chunk=self.eval_chunk)
        return RecurrentGraph(self.lstm), cfg

    def score(self, ids: torch.Tensor) -> float:
        """The text split into ``eval_streams`` contiguous streams (each but the first
        starting from the token before it as input, with a zero state), read in
        chunks that carry the state."""
        net = self.lstm.eval()
        n = len(ids) - 1  # targets
        k = max(1, min(self.eval_streams, n // 64))
        bounds = [n * i // k for i in range(k + 1)]
        lens = [bounds[i + 1] - bounds[i] for i in range(k)]
        width = max(lens)
        x = torch.zeros(k, width, dtype=torch.int64)
        y = torch.full((k, width), -100, dtype=torch.int64)
        for i in range(k):
            a, b = bounds[i], bounds[i + 1]
            x[i, :b - a] = ids[a:b]
            y[i, :b - a] = ids[a + 1:b + 1]
        total = 0.0
        state: State | None = None
        for s in range(0, width, self.eval_chunk):
            xs = x[:, s:s + self.eval_chunk].to(self.device)
            logits, state = net.run(xs, state)
            total += float(torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]).float(),
                y[:, s:s + self.eval_chunk].reshape(-1).to(self.device), ignore_index=-100,
                reduction="sum"))
        return total
