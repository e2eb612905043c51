"""The ``mix`` generator: the next-token distributions of two text models, interpolated.

``p = weight * p_first + (1 - weight) * p_second``, over the first model's
tokenizer. The second model's tokens are matched to the first's by the bytes
they stand for (so a character n-gram, whose space and line-break tokens are
its own, mixes with a character Transformer); a token of one model that the
other lacks gets probability 0 from that one. ``fit(data)`` fits ``weight`` by
EM on ``data`` (held-out text the components were not trained on), unless the
config gives it. Both components are copied into the bundle.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from aigc_engine import Engine
from aigc_engine.plugin_api import (
    ConfigError,
    GeneratorConfig,
    Manifest,
    Progress,
    TextDataset,
    Tokenizer,
    TokenModel,
    TokenTextGenerator,
    text_metrics,
)

NEG_INF = np.float32(-np.inf)


@dataclasses.dataclass(frozen=True)
class MixConfig(GeneratorConfig):
    """``first`` and ``second``: bundle paths of the two text models (the first one's
    tokenizer is the mix's); ``weight`` of the first in [0, 1], or -1 to fit it on the
    data given to ``fit``; ``streams``: parallel streams when scoring a text."""

    first: str = ""
    second: str = ""
    weight: float = -1.0
    streams: int = 64

    def validate(self) -> None:
        if not (self.weight == -1.0 or 0.0 <= self.weight <= 1.0):
            raise ConfigError(f"weight must be in [0, 1] or -1 (fit it), got {self.weight}")
        if self.streams < 1:
            raise ConfigError(f"streams must be >= 1, got {self.streams}")


def _softmax(logits: Any) -> np.ndarray:
    if hasattr(logits, "detach"):
        logits = logits.detach().float().cpu().numpy()
    x = np.asarray(logits, dtype=np.float64)
    x = x - np.max(x, axis=1, keepdims=True)
    e = np.exp(x)
    out: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return out


class MixTokenModel(TokenModel):
    """Both models advance together; logits are the log of the mixed distribution."""

    def __init__(self, a: TokenModel, b: TokenModel, weight: float) -> None:
        self.a, self.b, self.weight = a, b, weight
        ta, tb = a.tokenizer, b.tokenizer
        index = {ta.token_bytes(i): i for i in range(ta.vocab_size) if ta.token_bytes(i)}
        self.a_of_b = np.array([index.get(tb.token_bytes(j), -1) if tb.token_bytes(j) else -1
                                for j in range(tb.vocab_size)], dtype=np.int64)
        self.b_of_a = np.full(ta.vocab_size, -1, dtype=np.int64)
        for j, i in enumerate(self.a_of_b):
            if i >= 0 and self.b_of_a[i] < 0:
                self.b_of_a[i] = j
        if ta.eos_id is not None and tb.eos_id is not None and self.b_of_a[ta.eos_id] < 0:
            self.b_of_a[ta.eos_id] = tb.eos_id  # end of text as an input
        self.fill = tb.eos_id if tb.eos_id is not None else 0
        self._mapped = self.a_of_b >= 0

    @property
    def tokenizer(self) -> Tokenizer:
        return self.a.tokenizer

    def probs(self, la: Any, lb: Any) -> tuple[np.ndarray, np.ndarray]:
        """Each model's next-token probabilities over the first one's vocabulary."""
        pa = _softmax(la)
        pb_raw = _softmax(lb)
        pb = np.zeros_like(pa)
        cols = self.a_of_b[self._mapped]
        np.add.at(pb.T, cols, pb_raw[:, self._mapped].T)  # columns may repeat
        return pa, pb

    def _mix(self, la: Any, lb: Any) -> np.ndarray:
        pa, pb = self.probs(la, lb)
        with np.errstate(divide="ignore"):
            out: np.ndarray = np.log(self.weight * pa + (1.0 - self.weight) * pb).astype(
                np.float32)
        return out

    def _b_ids(self, ids: Sequence[int]) -> list[int]:
        return [int(self.b_of_a[t]) for t in ids if self.b_of_a[t] >= 0]

    def prefill(self, prompts: Sequence[Sequence[int]]) -> tuple[Any, Any]:
        la, sa = self.a.prefill(prompts)
        lb, sb = self.b.prefill([self._b_ids(p) for p in prompts])
        return self._mix(la, lb), (sa, sb, la, lb)

    def raw_prefill(self, prompts: Sequence[Sequence[int]]) -> tuple[Any, Any]:
        """Like prefill, returning both models' logits instead of the mixture."""
        la, sa = self.a.prefill(prompts)
        lb, sb = self.b.prefill([self._b_ids(p) for p in prompts])
        return (la, lb), (sa, sb, la, lb)

    def raw_step(self, tokens: np.ndarray, state: Any) -> tuple[Any, Any]:
        """Like step, returning both models' logits."""
        sa, sb, _, _ = state
        tb = self.b_of_a[tokens]
        tb = np.where(tb >= 0, tb, self.fill).astype(np.int64)
        la, sa = self.a.step(tokens, sa)
        lb, sb = self.b.step(tb, sb)
        return (la, lb), (sa, sb, la, lb)

    def step(self, tokens: np.ndarray, state: Any) -> tuple[Any, Any]:
        (la, lb), st = self.raw_step(tokens, state)
        return self._mix(la, lb), st

    def select(self, state: Any, rows: np.ndarray) -> Any:
        sa, sb, la, lb = state
        return self.a.select(sa, rows), self.b.select(sb, rows), None, None

    def concat(self, states: Sequence[Any]) -> Any:
        return (self.a.concat([s[0] for s in states]), self.b.concat([s[1] for s in states]),
                None, None)


class MixGenerator(TokenTextGenerator):
    """Two text models' next-token distributions mixed with a weight fitted on held-out text."""

    name: ClassVar[str] = "mix"
    config_class: ClassVar[type[GeneratorConfig]] = MixConfig

    def __init__(self, config: GeneratorConfig | None = None, **options: Any) -> None:
        super().__init__(config, **options)
        self.first: Any = None
        self.second: Any = None
        self.weight: float | None = None
        self._model: MixTokenModel | None = None

    @property
    def cfg(self) -> MixConfig:
        """The config, typed."""
        return self.config_as(MixConfig)

    @property
    def trained(self) -> bool:
        return self.weight is not None

    def _components(self) -> None:
        if self.first is None:
            c = self.cfg
            if not c.first or not c.second:
                raise ConfigError("mix needs first=BUNDLE and second=BUNDLE (two text models)")
            engine = Engine()
            self.first, self.second = engine.load(c.first), engine.load(c.second)
        for g in (self.first, self.second):
            if not isinstance(g, TokenTextGenerator):
                raise ConfigError(f"mix needs token-level text models; {g.name!r} is not one")

    def _token_model(self, weight: float) -> MixTokenModel:
        return MixTokenModel(self.first.token_model(), self.second.token_model(), weight)

    def token_model(self) -> TokenModel:
        """The mixture as the decoding loop drives it."""
        self.require_trained("generate with")
        assert self.weight is not None
        if self._model is None:
            self._model = self._token_model(self.weight)
        return self._model

    def _text(self, data: Any) -> str:
        dataset = self.dataset(data)
        if not isinstance(dataset, TextDataset):
            raise ConfigError(f"mix needs text data, got {type(dataset).__name__}")
        text = dataset.text()
        if not text:
            raise ConfigError(f"the data {dataset.name!r} is empty")
        return text

    def token_probs(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Both models' probabilities of each token of ``text`` (teacher forcing in
        ``streams`` contiguous streams, each starting from an empty prompt)."""
        model = self._token_model(0.5)
        ids = np.array(model.tokenizer.encode(text), dtype=np.int64)
        n = len(ids)
        k = max(1, min(self.cfg.streams, n))
        bounds = [n * i // k for i in range(k + 1)]
        pa_out, pb_out = np.zeros(n), np.zeros(n)
        (la, lb), state = model.raw_prefill([[] for _ in range(k)])
        rows = np.arange(k)
        pos = np.array(bounds[:-1])
        while len(rows):
            pa, pb = model.probs(la, lb)
            true = ids[pos]
            pa_out[pos] = pa[np.arange(len(rows)), true]
            pb_out[pos] = pb[np.arange(len(rows)), true]
            pos = pos + 1
            alive = pos < np.array([bounds[r + 1] for r in rows])
            if not alive.all():
                keep = np.nonzero(alive)[0]
                if len(keep) == 0:
                    break
                state = model.select(state, keep)
                rows, pos, true = rows[keep], pos[keep], true[keep]
            (la, lb), state = model.raw_step(true.astype(np.int64), state)
        return pa_out, pb_out

    def fit(self, data: Any, *, progress: Progress | None = None) -> dict[str, Any]:
        """Load the components and fit ``weight`` on ``data`` (held-out text) by EM."""
        self._components()
        text = self._text(data)
        pa, pb = self.token_probs(text)
        w = self.cfg.weight
        if w < 0:
            w = 0.5
            for _ in range(100):
                mixed = w * pa + (1 - w) * pb
                new = float(np.mean(w * pa / np.maximum(mixed, 1e-300)))
                if abs(new - w) < 1e-7:
                    w = new
                    break
                w = new
        self.weight = w
        self._model = None
        size = len(text.encode("utf-8"))
        nll = {name: float(-np.log(np.maximum(p, 1e-300)).sum()) for name, p in
               (("first", pa), ("second", pb), ("mix", w * pa + (1 - w) * pb))}
        self.metrics = {"weight": w, "fit_tokens": len(pa),
                        **{f"fit_{k}_bits_per_byte": v / math.log(2) / size
                           for k, v in nll.items()}}
        return dict(self.metrics)

    def evaluate(self, data: Any) -> dict[str, Any]:
        """Bits per byte and nats per token of the mixture on ``data`` (and of each part)."""
        self.require_trained("evaluate")
        assert self.weight is not None
        text = self._text(data)
        pa, pb = self.token_probs(text)
        w = self.weight
        size = len(text.encode("utf-8"))
        out = text_metrics(nats=float(-np.log(np.maximum(w * pa + (1 - w) * pb, 1e-300)).sum()),
                           tokens=len(pa), text_bytes=size)
        for name, p in (("first", pa), ("second", pb)):
            out[f"{name}_bits_per_byte"] = float(-np.log(np.maximum(p, 1e-300)).sum()) \
                / math.log(2) / size
        return out

    def _save_payload(self, directory: Path) -> None:
        self.first.save(directory / "first")
        self.second.save(directory / "second")

    def _manifest_extra(self) -> dict[str, Any]:
        return {"weight": self.weight}

    def _load_payload(self, directory: Path, manifest: Manifest) -> None:
        engine = Engine()
        self.first = engine.load(directory / "first")
        self.second = engine.load(directory / "second")
        self.weight = float(manifest.extra["weight"])
        self._model = None
