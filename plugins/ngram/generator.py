"""The ngram generator: estimation, evaluation and generation through the C++ core."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from aigc_engine.ngram import NGRAM_MAX_ORDER, NgramModel, parse_memory_size
from aigc_engine.plugin_api import (
    ConfigError,
    GeneratorConfig,
    Manifest,
    Progress,
    Task,
    TextDataset,
    TextGenerator,
    TextRequest,
    TextResult,
)

MODEL_FILE = "model.bin"
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
        """Estimate a modified Kneser-Ney model (as ``lmplz -o ORDER``).

        Each stage of the estimator (counting, adjusting counts, one per order
        for the probabilities) shows as its own progress task.
        """
        dataset = self._text(data)
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
        self.model = NgramModel.load_binary(directory / MODEL_FILE)

    def _export(self, path: Path, format: str) -> Path:
        if format == "arpa":
            self.lm.write_arpa(path)
        else:
            self.lm.save_binary(path)
        return path

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> NgramGenerator:
        """Open an ARPA file (KenLM's, SRILM's, pruned ones) to score with or generate from."""
        model = NgramModel.read_arpa(path)
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
