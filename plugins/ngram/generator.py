"""The ngram generator: estimation, evaluation and generation through the C++ core."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from pathlib import Path
from typing import Any, ClassVar

from aigc_engine.ngram import NGRAM_MAX_ORDER, NgramModel, parse_memory_size
from aigc_engine.plugin_api import (
    ConfigError,
    GeneratorConfig,
    Manifest,
    ModelFormatError,
    Progress,
    Task,
    TextDataset,
    TokenModel,
    TokenTextGenerator,
    text_metrics,
)

from .tokens import NgramTokenModel

MODEL_FILE = "model.bin"
BINARY_MAGIC = b"AIGCNGRM"  # the first bytes of the core's binary format
SPACE_TOKEN = "\u2581"  # the core's token for whitespace in char mode


@dataclasses.dataclass(frozen=True)
class NgramConfig(GeneratorConfig):
    """Options of the n-gram generator.

    ``order``: n-gram order (1 to the core's maximum). ``tokenizer``: "word"
    (split on whitespace, as lmplz) or "char" (every Unicode character a token,
    for text without spaces). ``discount_fallback``: discounts for adjusted
    counts 1, 2, 3+ used when an order's discounts cannot be estimated from a
    small corpus (lmplz ``--discount_fallback`` uses 0.5,1,1.5); empty = such a
    corpus is an error. ``prune``: count thresholds per order as lmplz
    ``--prune`` (first 0, non-decreasing). ``threads``: 0 = all cores.
    ``memory``: a budget for estimation as lmplz ``-S`` ("100M", "2G", "25%" of
    RAM; empty = no budget, all in memory): counting and the estimation stages
    then spill sorted runs to ``temp_dir`` (as lmplz ``-T``; empty = $TMPDIR or
    /tmp) and merge them; the model is the same bit for bit. Both are training
    options: they do not change the model.
    """

    order: int = 3
    tokenizer: str = "word"
    discount_fallback: tuple[float, ...] = ()
    prune: tuple[int, ...] = ()
    threads: int = 0
    memory: str = ""
    temp_dir: str = ""

    def validate(self) -> None:
        if not 1 <= self.order <= NGRAM_MAX_ORDER:
            raise ConfigError(f"order must be in [1, {NGRAM_MAX_ORDER}], got {self.order}")
        if self.tokenizer not in ("word", "char"):
            raise ConfigError(f"tokenizer must be 'word' or 'char', got {self.tokenizer!r}")
        if len(self.discount_fallback) > 3 or any(d <= 0 for d in self.discount_fallback):
            raise ConfigError(
                "discount_fallback must be up to 3 positive discounts (e.g. 0.5,1,1.5), "
                f"got {self.discount_fallback}"
            )
        if len(self.prune) > self.order:
            raise ConfigError(
                f"prune has {len(self.prune)} thresholds for order {self.order}; give at most one "
                "per order"
            )
        if self.threads < 0:
            raise ConfigError(f"threads must be >= 0 (0 = all cores), got {self.threads}")
        if self.memory:
            try:
                budget = parse_memory_size(self.memory)
            except ValueError as exc:
                raise ConfigError(f"memory: {exc}") from None
            if budget == 0:
                raise ConfigError(
                    f"memory {self.memory!r} is 0 bytes; leave it empty for no budget")
        if self.temp_dir and not os.path.isdir(self.temp_dir):
            raise ConfigError(f"temp_dir {self.temp_dir!r} is not a directory")


class NgramGenerator(TokenTextGenerator):
    """An n-gram language model that estimates, scores and generates text.

    Completions are words joined by single spaces (word mode; the first one
    after a prompt that does not end a line starts with a space) or characters
    (char mode); ``</s>``, generated when ``stop_at_eos`` is off, is a line
    break, and a line break in the prompt ends a sentence. Words the model does
    not know are scored and conditioned on as ``<unk>``, which is never
    generated. Generation runs in the C++ core, in chunks, through the engine's
    decoding loop.
    """

    name: ClassVar[str] = "ngram"
    config_class: ClassVar[type[GeneratorConfig]] = NgramConfig
    export_formats: ClassVar[tuple[str, ...]] = ("arpa", "binary")

    def __init__(self, config: GeneratorConfig | None = None, **options: Any) -> None:
        super().__init__(config, **options)
        self.model: NgramModel | None = None
        self._token_model: NgramTokenModel | None = None

    @property
    def cfg(self) -> NgramConfig:
        """The config, typed."""
        return self.config_as(NgramConfig)

    @property
    def trained(self) -> bool:
        return self.model is not None

    @property
    def lm(self) -> NgramModel:
        """The compiled model (after fit or load)."""
        self.require_trained("use")
        assert self.model is not None
        return self.model

    # -- training and evaluation -------------------------------------------------
    def fit(self, data: Any, *, progress: Progress | None = None) -> dict[str, Any]:
        """Estimate a modified Kneser-Ney model (as ``lmplz -o ORDER``).

        Each stage of the estimator (counting, adjusting counts, one per order
        for the probabilities) shows as its own progress task.
        """
        dataset = self._text(data)
        if not any(line.strip() for line in dataset.lines()):
            raise ConfigError(
                f"dataset {dataset.name!r} holds no text (every line is empty): nothing to "
                "estimate an n-gram model from")
        cfg = self.cfg
        progress = progress or Progress()
        with _StageProgress(progress, f"order-{cfg.order}") as report:
            self.model = NgramModel.estimate(
                _source(dataset), cfg.order, mode=cfg.tokenizer,
                discount_fallback=list(cfg.discount_fallback) or None,
                prune=list(cfg.prune) or None, threads=cfg.threads,
                memory=cfg.memory or None, temp_dir=cfg.temp_dir or None, progress=report)
        counts = list(self.model.counts)
        self.metrics = {"ngrams": sum(counts), "vocab_size": self.model.vocab_size,
                        **{f"ngrams_{i + 1}": c for i, c in enumerate(counts)}}
        return dict(self.metrics)

    def evaluate(self, data: Any) -> dict[str, Any]:
        """Bits per byte and nats per token (the metrics every text generator reports),
        and perplexity including and excluding OOVs as KenLM's ``query`` reports them.

        Every line is scored with ``</s>`` at its end (a token of the count, as
        in KenLM); out-of-vocabulary words are scored as ``<unk>`` (KenLM's
        "including OOVs"), so they cost the unigram probability of ``<unk>``
        rather than their spelling: a word model's bits per byte flatters it on
        text with many unknown words (see ``oov``).
        """
        dataset = self._text(data)
        stats = dict(self.lm.perplexity(_source(dataset), threads=self.cfg.threads))
        nats = -float(stats["log10_prob"]) * math.log(10.0)
        size = sum(len(line.encode("utf-8")) + 1 for line in dataset.lines())
        return {**text_metrics(nats=nats, tokens=int(stats["tokens"]), text_bytes=size),
                **stats}

    def score(self, sentence: str, *, bos: bool = True, eos: bool = True) -> float:
        """log10 probability of one sentence (``kenlm.Model.score`` semantics)."""
        return float(self.lm.score(sentence, bos=bos, eos=eos))

    def _text(self, data: Any) -> TextDataset:
        dataset = self.dataset(data)
        if not isinstance(dataset, TextDataset):
            raise ConfigError(f"the ngram generator needs text data, got {type(dataset).__name__}")
        return dataset

    # -- generation ----------------------------------------------------------------
    def token_model(self) -> TokenModel:
        """The model as the engine's decoding loop drives it (built once per model)."""
        lm = self.lm
        if self._token_model is None or self._token_model.lm is not lm:
            self._token_model = NgramTokenModel(lm)
        return self._token_model

    # -- files -----------------------------------------------------------------------
    def _save_payload(self, directory: Path) -> None:
        self.lm.save_binary(directory / MODEL_FILE)

    def _load_payload(self, directory: Path, manifest: Manifest) -> None:
        path = manifest.payload(directory, MODEL_FILE)
        model = NgramModel.load_binary(path)
        # The manifest's config must describe the model the payload holds.
        cfg = self.cfg
        lies = []
        if model.order != cfg.order:
            lies.append(f"order {cfg.order} (the model is order {model.order})")
        if model.mode != cfg.tokenizer:
            lies.append(f"tokenizer {cfg.tokenizer!r} (the model's is {model.mode!r})")
        counts = list(model.counts)
        for key, value in (("vocab_size", model.vocab_size), ("ngrams", sum(counts)),
                           *((f"ngrams_{i + 1}", c) for i, c in enumerate(counts))):
            if key in self.metrics and self.metrics[key] != value:
                lies.append(f"{key}={self.metrics[key]!r} (the model has {value})")
        if lies:
            raise ModelFormatError(
                f"bundle {str(directory)!r}: its manifest does not match {MODEL_FILE}: it says "
                + ", ".join(lies))
        self.model = model

    def _export(self, path: Path, format: str, **options: Any) -> Path:
        if options:
            raise ConfigError(f"{format} export takes no options, got {sorted(options)}")
        if format == "arpa":
            self.lm.write_arpa(path)
        else:
            self.lm.save_binary(path)
        return path

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> NgramGenerator:
        """Open an ARPA file (KenLM's, SRILM's, pruned ones) or a binary model written by
        ``export(format="binary")`` (recognised by its magic bytes) to score with or
        generate from."""
        with open(path, "rb") as fh:
            magic = fh.read(len(BINARY_MAGIC))
        model = NgramModel.load_binary(path) if magic == BINARY_MAGIC \
            else NgramModel.read_arpa(path)
        gen = cls(order=model.order, tokenizer=model.mode)
        gen.model = model
        return gen


class _StageProgress:
    """Turns the core's (stage, done, total) reports into one progress task per stage."""

    def __init__(self, progress: Progress, label: str) -> None:
        self._progress = progress
        self._label = label
        self._stack = contextlib.ExitStack()
        self._stage: str | None = None
        self._task: Task | None = None
        self._done = 0

    def __enter__(self) -> _StageProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self._stage:
            self._stack.close()
            self._stack = contextlib.ExitStack()
            self._task = self._stack.enter_context(self._progress.task(
                f"{self._label}: {stage}", total=total or None))
            self._stage = stage
            self._done = 0
        if self._task is not None and done > self._done:
            self._task.advance(done - self._done)
            self._done = done


def _source(dataset: TextDataset) -> Any:
    """A single file is read by the core directly; anything else is passed as lines."""
    if not dataset.in_memory and len(dataset.paths) == 1:
        return str(dataset.paths[0])
    return list(dataset.lines())
