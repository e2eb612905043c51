"""The template generator: text from a Tracery-style grammar."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path
from typing import Any, ClassVar

from aigc_engine.plugin_api import (
    Completion,
    ConfigError,
    GeneratorConfig,
    Manifest,
    ModelFormatError,
    Progress,
    TextDataset,
    TextGenerator,
    TextRequest,
    TextResult,
    cut_at_stop,
    read_json,
)

from .grammar import Grammar

GRAMMAR_FILE = "grammar.json"


@dataclasses.dataclass(frozen=True)
class TemplateConfig(GeneratorConfig):
    """Options of the template generator.

    ``start``: the symbol each text expands from. ``max_depth``: how deep
    expansion may nest before it is stopped as runaway recursion. Each text is
    also bounded in size (``grammar.MAX_CHARS`` characters,
    ``grammar.MAX_EXPANSIONS`` symbol expansions): a grammar that grows without
    end is a clear error, not a hang.
    """

    start: str = "origin"
    max_depth: int = 64

    def validate(self) -> None:
        if not self.start:
            raise ConfigError("start must name a grammar symbol")
        if not 1 <= self.max_depth <= 10_000:
            raise ConfigError(f"max_depth must be in [1, 10000], got {self.max_depth}")


def sample_rng(seed: int, index: int) -> random.Random:
    """The RNG of sample ``index`` of a request: independent of how many samples are asked."""
    return random.Random(f"aigc-template:{seed}:{index}")


class TemplateGenerator(TextGenerator):
    """Expands a grammar (``fit`` reads it from a JSON file or dataset).

    The prompt, when given, is put before the generated text. ``max_tokens``
    does not apply: a grammar decides where a text ends.
    """

    name: ClassVar[str] = "template"
    config_class: ClassVar[type[GeneratorConfig]] = TemplateConfig

    def __init__(self, config: GeneratorConfig | None = None, **options: Any) -> None:
        super().__init__(config, **options)
        self.grammar: Grammar | None = None

    @property
    def cfg(self) -> TemplateConfig:
        """The config, typed."""
        return self.config_as(TemplateConfig)

    @property
    def trained(self) -> bool:
        return self.grammar is not None

    def fit(self, data: Any, *, progress: Progress | None = None) -> dict[str, Any]:
        """Read the grammar: a dict, a JSON file, or a text dataset holding JSON."""
        if isinstance(data, dict):
            rules = data
        else:
            dataset = self.dataset(data)
            if not isinstance(dataset, TextDataset):
                raise ConfigError("the template generator reads its grammar from text (JSON)")
            try:
                rules = json.loads(dataset.text())
            except json.JSONDecodeError as exc:
                raise ConfigError(
                    f"grammar {dataset.name!r} is not valid JSON: {exc.msg} at line {exc.lineno}"
                    f" column {exc.colno}"
                ) from None
            except RecursionError:
                raise ConfigError(f"grammar {dataset.name!r} is nested too deeply") from None
            except ValueError as exc:  # integers over the digit limit
                raise ConfigError(f"grammar {dataset.name!r} is not usable JSON: {exc}") from None
        self.grammar = Grammar(rules)
        if self.cfg.start not in self.grammar.symbols:
            raise ConfigError(
                f"start symbol {self.cfg.start!r} is not in the grammar; symbols: "
                f"{', '.join(self.grammar.symbols)}"
            )
        self.metrics = {"symbols": len(self.grammar.symbols),
                        "rules": sum(len(r) for r in self.grammar.source.values())}
        return dict(self.metrics)

    def _generate(self, request: TextRequest) -> TextResult:
        """Each sample is one whole expansion (``max_tokens`` does not apply), cut
        before the first ``stop`` string; the prompt is prepended with ``echo``."""
        assert self.grammar is not None and request.seed is not None
        prefix = request.prompt if request.echo else ""
        choices = []
        for i in range(request.n):
            text = "".join(self.grammar.iter_expand(self.cfg.start, sample_rng(request.seed, i),
                                                    max_depth=self.cfg.max_depth))
            text = cut_at_stop(text, request.stop)
            choices.append(Completion(index=i, text=prefix + text))
        return TextResult(texts=[c.text for c in choices], request=request, choices=choices)

    def _save_payload(self, directory: Path) -> None:
        assert self.grammar is not None
        (directory / GRAMMAR_FILE).write_text(
            json.dumps(self.grammar.source, indent=2, ensure_ascii=False) + "\n",
            encoding="utf-8")

    def _load_payload(self, directory: Path, manifest: Manifest) -> None:
        path = manifest.payload(directory, GRAMMAR_FILE)
        rules = read_json(path, what="grammar")
        if not isinstance(rules, dict):
            raise ModelFormatError(f"grammar {str(path)!r} must hold a JSON object of symbol -> "
                                   f"rules, not {type(rules).__name__}")
        try:
            self.fit(rules)
        except ConfigError as exc:
            raise ModelFormatError(f"grammar {str(path)!r} is not a usable grammar: {exc}"
                                   ) from None
