"""The ngram generator: estimation, evaluation and generation through the C++ core."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from aigc_engine.ngram import NGRAM_MAX_ORDER, NgramModel
from aigc_engine.plugin_api import (
    ConfigError,
    GeneratorConfig,
    Manifest,
    ModelFormatError,
    Progress,
    TextDataset,
    TextGenerator,
    TextRequest,
    TextResult,
)

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
    """

    order: int = 3
    tokenizer: str = "word"
    discount_fallback: tuple[float, ...] = ()
    prune: tuple[int, ...] = ()
    threads: int = 0

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


class NgramGenerator(TextGenerator):
    """An n-gram language model that estimates, scores and generates text.

    Generated texts are the prompt followed by the continuation (words joined
    by single spaces in word mode, characters concatenated in char mode).
    Words the model does not know are scored and conditioned on as ``<unk>``.
    """

    name: ClassVar[str] = "ngram"
    config_class: ClassVar[type[GeneratorConfig]] = NgramConfig
    export_formats: ClassVar[tuple[str, ...]] = ("arpa", "binary")

    def __init__(self, config: GeneratorConfig | None = None, **options: Any) -> None:
        super().__init__(config, **options)
        self.model: NgramModel | None = None

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
        self._require_trained("use")
        assert self.model is not None
        return self.model

    # -- training and evaluation -------------------------------------------------
    def fit(self, data: Any, *, progress: Progress | None = None) -> dict[str, Any]:
        """Estimate a modified Kneser-Ney model (as ``lmplz -o ORDER``)."""
        dataset = self._text(data)
        if not any(line.strip() for line in dataset.lines()):
            raise ConfigError(
                f"dataset {dataset.name!r} holds no text (every line is empty): nothing to "
                "estimate an n-gram model from")
        cfg = self.cfg
        progress = progress or Progress()
        with progress.task(f"estimating order-{cfg.order} model", total=None):
            self.model = NgramModel.estimate(
                _source(dataset), cfg.order, mode=cfg.tokenizer,
                discount_fallback=list(cfg.discount_fallback) or None,
                prune=list(cfg.prune) or None, threads=cfg.threads)
        counts = list(self.model.counts)
        self.metrics = {"ngrams": sum(counts), "vocab_size": self.model.vocab_size,
                        **{f"ngrams_{i + 1}": c for i, c in enumerate(counts)}}
        return dict(self.metrics)

    def evaluate(self, data: Any) -> dict[str, Any]:
        """Perplexity including and excluding OOVs, as KenLM's ``query`` reports them."""
        stats = self.lm.perplexity(_source(self._text(data)), threads=self.cfg.threads)
        return dict(stats)

    def score(self, sentence: str, *, bos: bool = True, eos: bool = True) -> float:
        """log10 probability of one sentence (``kenlm.Model.score`` semantics)."""
        return float(self.lm.score(sentence, bos=bos, eos=eos))

    def _text(self, data: Any) -> TextDataset:
        dataset = self._dataset(data)
        if not isinstance(dataset, TextDataset):
            raise ConfigError(f"the ngram generator needs text data, got {type(dataset).__name__}")
        return dataset

    # -- generation ----------------------------------------------------------------
    def _continuation(self, request: TextRequest, index: int) -> list[str]:
        params = request.sampling
        assert request.seed is not None
        ids = self.lm.generate(
            self.lm.tokenize(request.prompt), request.max_tokens,
            temperature=params.temperature, top_k=params.top_k, top_p=params.top_p,
            min_p=params.min_p, repetition_penalty=params.repetition_penalty,
            presence_penalty=params.presence_penalty, frequency_penalty=params.frequency_penalty,
            seed=request.seed, stream=index, stop_at_eos=request.stop_at_eos)
        return [self.lm.word(int(i)) for i in ids]

    def _pieces(self, request: TextRequest, index: int) -> Iterator[str]:
        """The prompt, then each generated token as it will appear in the text.

        Word mode puts one space between words; ``</s>`` (generated when
        ``stop_at_eos`` is off) becomes a line break; char mode shows the core's
        whitespace token as a space.
        """
        char = self.lm.mode == "char"
        at_line_start = not request.prompt or request.prompt.endswith("\n")
        if request.prompt:
            yield request.prompt
        for word in self._continuation(request, index):
            if word == "</s>":
                at_line_start = True
                yield "\n"
            elif char:
                yield " " if word == SPACE_TOKEN else word
            else:
                yield word if at_line_start else " " + word
                at_line_start = False

    def _generate(self, request: TextRequest) -> TextResult:
        texts = ["".join(self._pieces(request, i)) for i in range(request.n)]
        return TextResult(texts=texts, request=request)

    def _stream(self, request: TextRequest) -> Iterator[str]:
        # The core generates a whole continuation in microseconds; its tokens are
        # yielded one by one so a terminal shows them as they come.
        yield from self._pieces(request, 0)

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

    def _export(self, path: Path, format: str) -> Path:
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


def _source(dataset: TextDataset) -> Any:
    """A single file is read by the core directly; anything else is passed as lines."""
    if not dataset.in_memory and len(dataset.paths) == 1:
        return str(dataset.paths[0])
    return list(dataset.lines())
