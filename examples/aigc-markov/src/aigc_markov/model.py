"""The markov generator."""

from __future__ import annotations

import dataclasses
import json
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from aigc_engine.plugin_api import (
    CharTokenizer,
    ConfigError,
    GeneratorConfig,
    Manifest,
    ModelFormatError,
    Progress,
    TextDataset,
    Tokenizer,
    TokenModel,
    TokenTextGenerator,
    text_metrics,
)

BOS = "\x02"  # pads the start of every line
EOS = "\x03"  # ends every line; the tokenizer's end-of-text
PAYLOAD = "markov.json"


@dataclasses.dataclass(frozen=True)
class MarkovConfig(GeneratorConfig):
    """``order``: characters of context (1-12). ``alpha``: additive smoothing (> 0)."""

    order: int = 3
    alpha: float = 0.01

    def validate(self) -> None:
        if not 1 <= self.order <= 12:
            raise ConfigError(f"order must be in [1, 12], got {self.order}")
        if not self.alpha > 0:
            raise ConfigError(f"alpha must be > 0, got {self.alpha}")


class MarkovTokenModel(TokenModel):
    """Rows of log P(next char | context) over a char tokenizer (with byte
    fallback, so any prompt encodes); the state is each row's context string."""

    batch_invariant = True  # each row's probabilities are computed apart

    def __init__(self, gen: MarkovGenerator) -> None:
        self.gen = gen
        self.alphabet = gen.alphabet
        chars = [c for c in gen.alphabet if c != EOS]
        self._tok = CharTokenizer(chars, byte_fallback=True)
        self._cache: dict[str, np.ndarray] = {}

    @property
    def tokenizer(self) -> Tokenizer:
        return self._tok

    def _row(self, context: str) -> np.ndarray:
        ctx = (BOS * self.gen.order + context)[-self.gen.order:]
        row = self._cache.get(ctx)
        if row is None:
            row = np.full(self._tok.vocab_size, -np.inf, dtype=np.float32)
            probs = dict(self.gen.probabilities(ctx))
            for i, c in enumerate(self._tok.alphabet):
                row[i] = math.log(probs[c])
            assert self._tok.eos_id is not None
            row[self._tok.eos_id] = math.log(probs[EOS])
            self._cache[ctx] = row
        return row

    def prefill(self, prompts: Sequence[Sequence[int]]) -> tuple[Any, Any]:
        state = [self._tok.decode(p)[-self.gen.order:] for p in prompts]
        return np.stack([self._row(c) for c in state]), state

    def step(self, tokens: np.ndarray, state: Any) -> tuple[Any, Any]:
        order = self.gen.order
        state = [(c + self._tok.decode([int(t)]))[-order:] for c, t in zip(state, tokens,
                                                                           strict=True)]
        return np.stack([self._row(c) for c in state]), state

    def select(self, state: Any, rows: np.ndarray) -> Any:
        return [state[int(i)] for i in rows]


class MarkovGenerator(TokenTextGenerator):
    """P(c | previous ``order`` characters) = (count + alpha) / (total + alpha * V)."""

    name: ClassVar[str] = "markov"
    config_class: ClassVar[type[GeneratorConfig]] = MarkovConfig

    def __init__(self, config: GeneratorConfig | None = None, **options: Any) -> None:
        super().__init__(config, **options)
        self.counts: dict[str, Counter[str]] = {}
        self.alphabet: list[str] = []
        self._token_model: MarkovTokenModel | None = None

    @property
    def cfg(self) -> MarkovConfig:
        """The config, typed."""
        return self.config_as(MarkovConfig)

    @property
    def order(self) -> int:
        """Characters of context."""
        return self.cfg.order

    @property
    def alpha(self) -> float:
        """The smoothing constant."""
        return self.cfg.alpha

    @property
    def trained(self) -> bool:
        return bool(self.alphabet)

    def fit(self, data: Any, *, progress: Progress | None = None) -> dict[str, Any]:
        dataset = self.dataset(data)
        if not isinstance(dataset, TextDataset):
            raise ConfigError("markov trains on text")
        counts: dict[str, Counter[str]] = {}
        chars: set[str] = {EOS}
        lines = 0
        for line in dataset.lines():
            if not line:
                continue
            lines += 1
            padded = BOS * self.order + line + EOS
            chars.update(line)
            for i in range(self.order, len(padded)):
                counts.setdefault(padded[i - self.order:i], Counter())[padded[i]] += 1
        if not lines:
            raise ConfigError(f"dataset {dataset.name!r} has no non-empty line to train on")
        self.counts = counts
        self.alphabet = sorted(chars)
        self.metrics = {"lines": lines, "contexts": len(counts), "alphabet": len(self.alphabet)}
        return dict(self.metrics)

    def probabilities(self, context: str) -> list[tuple[str, float]]:
        """The smoothed next-character distribution after ``context``."""
        ctx = (BOS * self.order + context)[-self.order:]
        seen = self.counts.get(ctx, Counter())
        total = sum(seen.values())
        denom = total + self.alpha * len(self.alphabet)
        return [(c, (seen.get(c, 0) + self.alpha) / denom) for c in self.alphabet]

    def most_likely(self, context: str, k: int) -> list[tuple[str, float]]:
        """The ``k`` most likely next characters with their probabilities."""
        return sorted(self.probabilities(context), key=lambda cp: -cp[1])[:k]

    def evaluate(self, data: Any) -> dict[str, Any]:
        """Bits per byte and nats per character (end of line included), as every text
        generator reports them, with the per-character perplexity. Characters
        outside the alphabet are skipped (counted in ``unknown_characters``; their
        bytes still count in ``bytes``)."""
        self.require_trained("evaluate")
        dataset = self.dataset(data)
        if not isinstance(dataset, TextDataset):
            raise ConfigError("markov evaluates on text")
        log_sum, scored, unknown, size = 0.0, 0, 0, 0
        for line in dataset.lines():
            if not line:
                continue
            size += len(line.encode("utf-8")) + 1
            padded = BOS * self.order + line + EOS
            for i in range(self.order, len(padded)):
                char = padded[i]
                if char not in self.alphabet:
                    unknown += 1
                    continue
                probs = dict(self.probabilities(padded[i - self.order:i]))
                log_sum += math.log(probs[char])
                scored += 1
        if not scored:
            raise ConfigError(f"dataset {dataset.name!r} has nothing to score")
        return {**text_metrics(nats=-log_sum, tokens=scored, text_bytes=size),
                "characters": scored, "unknown_characters": unknown}

    def token_model(self) -> TokenModel:
        """The chain as the engine's decoding loop drives it: one row of
        log-probabilities per sequence, end of line as end-of-text."""
        self.require_trained("generate with")
        if self._token_model is None or self._token_model.alphabet != self.alphabet:
            self._token_model = MarkovTokenModel(self)
        return self._token_model

    def _save_payload(self, directory: Path) -> None:
        data = {"alphabet": self.alphabet,
                "counts": {ctx: dict(counter) for ctx, counter in self.counts.items()}}
        (directory / PAYLOAD).write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")

    def _load_payload(self, directory: Path, manifest: Manifest) -> None:
        try:
            data = json.loads((directory / PAYLOAD).read_text(encoding="utf-8"))
            self.alphabet = [str(c) for c in data["alphabet"]]
            self.counts = {str(ctx): Counter({str(c): int(n) for c, n in nexts.items()})
                           for ctx, nexts in data["counts"].items()}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelFormatError(f"{directory / PAYLOAD} is not a markov model: {exc}") from None
