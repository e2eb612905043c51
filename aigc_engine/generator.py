"""Generator base classes and the request and result types.

A generator is a plain object: a validated config plus the capabilities of its
kind. Text generators implement :meth:`TextGenerator._generate` (and optionally
:meth:`TextGenerator._stream`); image generators implement
:meth:`ImageGenerator._generate`. The public ``generate`` methods validate the
request, draw a seed when none is given (and record it in the result, so any
output can be reproduced), and run the engine's result processors.
"""

from __future__ import annotations

import abc
import dataclasses
import math
import numbers
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from . import bundle as _bundle
from .config import GeneratorConfig
from .errors import ConfigError, ModelFormatError, UnsupportedOperationError
from .progress import Progress

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from .datasets import Dataset

G = TypeVar("G", bound="Generator[Any]")
C = TypeVar("C", bound=GeneratorConfig)
R = TypeVar("R", "TextRequest", "ImageRequest")
T = TypeVar("T")

MAX_SEED = 2**63 - 1
#: Upper bounds of a request (beyond them a request is a mistake, not a workload).
MAX_TOKENS = 2**31 - 1
MAX_N = 1024


def _check_seed(seed: int | None) -> None:
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ConfigError(f"seed must be an integer or None, got {seed!r}")
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"seed must be in [0, 2**63 - 1], got {seed}")


def _check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def fresh_seed() -> int:
    """A random seed from the operating system, for requests that give none."""
    return int.from_bytes(os.urandom(8), "little") & MAX_SEED


@dataclasses.dataclass(frozen=True)
class SamplingParams:
    """How scores become tokens; the same meaning in every text generator.

    Validated on construction (:class:`~aigc_engine.errors.ConfigError` names
    the field and the value); :mod:`aigc_engine.sampling` documents the exact
    semantics. Applied in this order: penalties over the tokens generated so far
    (``repetition_penalty`` divides positive and multiplies negative logits of
    each distinct earlier token; ``presence_penalty`` and ``frequency_penalty``
    subtract, as OpenAI defines them), ``temperature`` (0 = greedy), ``top_k``
    (0 = off; ties with the k-th kept), ``top_p`` (1 = off; on the top-k
    distribution), ``min_p`` (0 = off; keeps p >= min_p * max p), then one draw.
    """

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0

    def __post_init__(self) -> None:
        def number(name: str) -> float:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ConfigError(f"{name} must be a number, got {value!r}")
            object.__setattr__(self, name, float(value))
            return float(value)

        t = number("temperature")
        if not math.isfinite(t) or t < 0:
            raise ConfigError(f"temperature must be finite and >= 0 (0 = greedy), got {t!r}")
        k = self.top_k
        if isinstance(k, bool) or not isinstance(k, numbers.Integral):
            raise ConfigError(f"top_k must be an integer (<= 0 disables it), got {k!r}")
        if not -(2**31) <= int(k) < 2**31:
            raise ConfigError(f"top_k must fit in int32, got {k!r}")
        object.__setattr__(self, "top_k", int(k))
        p = number("top_p")
        if math.isnan(p) or p <= 0:
            raise ConfigError(f"top_p must be > 0 (>= 1 disables it), got {p!r}")
        mp = number("min_p")
        if math.isnan(mp) or mp > 1:
            raise ConfigError(f"min_p must be <= 1 (<= 0 disables it), got {mp!r}")
        r = number("repetition_penalty")
        if not math.isfinite(r) or r <= 0:
            raise ConfigError(
                f"repetition_penalty must be finite and > 0 (1 disables it), got {r!r}")
        for name in ("presence_penalty", "frequency_penalty"):
            if not math.isfinite(number(name)):
                raise ConfigError(f"{name} must be finite, got {getattr(self, name)!r}")

    @property
    def greedy(self) -> bool:
        """True when temperature is 0: the first most likely token is taken."""
        return self.temperature == 0.0


def _field_names(cls: type) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(cls))


def _reject_unknown(options: Mapping[str, Any], valid: frozenset[str], *,
                    also_valid: frozenset[str] = frozenset()) -> None:
    """A ConfigError naming unknown request options and listing the valid ones."""
    unknown = sorted(set(options) - valid)
    if unknown:
        raise ConfigError(
            f"unknown request option(s) {', '.join(map(repr, unknown))}; valid: "
            f"{', '.join(sorted(valid | also_valid))}"
        )


_SAMPLING_FIELDS = _field_names(SamplingParams)


MAX_LOGPROBS = 20
MAX_STOPS = 16


@dataclasses.dataclass(frozen=True)
class TextRequest:
    """A request for text: ``n`` continuations of ``prompt``.

    ``seed`` makes the output reproducible; sample ``i`` of a request uses
    stream ``i`` of that seed, so ``n=3`` gives the same first text as ``n=1``.
    The result's texts are the completions (without the prompt, as OpenAI's
    API), or the prompt followed by the completion with ``echo``.

    Stop rules (:mod:`aigc_engine.decoding` has their exact semantics):
    ``max_tokens``; the end-of-text token (``stop_at_eos``); ``stop`` strings,
    matched across token boundaries and left out of the text; ``stop_token_ids``;
    ``min_tokens`` bans end-of-text and stop tokens until that many tokens are
    generated. ``logprobs``: ``None`` (off) or how many alternatives (0-20) to
    report beside each chosen token's log-probability.
    """

    prompt: str = ""
    max_tokens: int = 100
    sampling: SamplingParams = SamplingParams()
    seed: int | None = None
    n: int = 1
    #: Stop at the end-of-text token (an n-gram model's ``</s>``). False goes on
    #: past it (a new sentence for an n-gram, shown as a line break) until ``max_tokens``.
    stop_at_eos: bool = True
    stop: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()
    min_tokens: int = 0
    logprobs: int | None = None
    echo: bool = False

    def __post_init__(self) -> None:
        for flag in ("stop_at_eos", "echo"):
            if not isinstance(getattr(self, flag), bool):
                raise ConfigError(f"{flag} must be True or False, got {getattr(self, flag)!r}")
        if not isinstance(self.prompt, str):
            raise ConfigError(f"prompt must be a string, got {type(self.prompt).__name__}")
        _check_positive_int("max_tokens", self.max_tokens)
        if self.max_tokens > MAX_TOKENS:
            raise ConfigError(f"max_tokens must be at most {MAX_TOKENS}, got {self.max_tokens}")
        _check_positive_int("n", self.n)
        if self.n > MAX_N:
            raise ConfigError(f"n must be at most {MAX_N}, got {self.n}")
        _check_seed(self.seed)
        if not isinstance(self.sampling, SamplingParams):
            raise ConfigError("sampling must be a SamplingParams")
        stop = (self.stop,) if isinstance(self.stop, str) else self.stop
        if not isinstance(stop, (tuple, list)) or not all(
                isinstance(x, str) and x for x in stop):
            raise ConfigError(f"stop must be a string or a list of non-empty strings, got {stop!r}")
        if len(stop) > MAX_STOPS:
            raise ConfigError(f"stop holds {len(stop)} strings; at most {MAX_STOPS} are allowed")
        object.__setattr__(self, "stop", tuple(stop))
        ids = self.stop_token_ids
        if not isinstance(ids, (tuple, list)) or not all(
                isinstance(i, int) and not isinstance(i, bool) and 0 <= i < 2**31 for i in ids):
            raise ConfigError(f"stop_token_ids must be a list of token ids (ints >= 0), got {ids!r}")
        object.__setattr__(self, "stop_token_ids", tuple(ids))
        m = self.min_tokens
        if isinstance(m, bool) or not isinstance(m, int) or not 0 <= m <= self.max_tokens:
            raise ConfigError(
                f"min_tokens must be an integer in [0, max_tokens={self.max_tokens}], got {m!r}")
        lp = self.logprobs
        if lp is not None and (isinstance(lp, bool) or not isinstance(lp, int)
                               or not 0 <= lp <= MAX_LOGPROBS):
            raise ConfigError(f"logprobs must be None or an integer in [0, {MAX_LOGPROBS}], "
                              f"got {lp!r}")

    @classmethod
    def build(cls, request: str | TextRequest | None = None, /, **options: Any) -> TextRequest:
        """A request from keyword options; sampling options may be given flat.

        ``TextRequest.build("To be", max_tokens=20, top_k=40, seed=1)``; the first
        argument may be a prompt or a request to modify.
        """
        if isinstance(request, TextRequest):
            if not options:
                return request
            base = {f.name: getattr(request, f.name) for f in dataclasses.fields(request)}
        else:
            base = {} if request is None else {"prompt": request}
        sampling = {k: options.pop(k) for k in list(options) if k in _SAMPLING_FIELDS}
        _reject_unknown(options, _field_names(cls), also_valid=_SAMPLING_FIELDS)
        merged = {**base, **options}
        if sampling:
            current = merged.get("sampling", SamplingParams())
            merged["sampling"] = dataclasses.replace(current, **sampling)
        return cls(**merged)

    def with_seed(self) -> TextRequest:
        """This request with a seed drawn if it has none."""
        return self if self.seed is not None else dataclasses.replace(self, seed=fresh_seed())


@dataclasses.dataclass(frozen=True)
class ImageRequest:
    """A request for ``n`` images; ``labels`` (one per image) for class-conditional models."""

    n: int = 1
    seed: int | None = None
    labels: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        _check_positive_int("n", self.n)
        _check_seed(self.seed)
        if self.labels is not None:
            labels = tuple(self.labels)
            if len(labels) != self.n:
                raise ConfigError(f"labels has {len(labels)} entries for n={self.n} images")
            object.__setattr__(self, "labels", labels)

    @classmethod
    def build(cls, request: ImageRequest | None = None, /, **options: Any) -> ImageRequest:
        """A request from keyword options (``n``, ``seed``, ``labels``)."""
        _reject_unknown(options, _field_names(cls))
        if request is not None:
            return dataclasses.replace(request, **options) if options else request
        return cls(**options)

    def with_seed(self) -> ImageRequest:
        """This request with a seed drawn if it has none."""
        return self if self.seed is not None else dataclasses.replace(self, seed=fresh_seed())


@dataclasses.dataclass(frozen=True)
class TokenLogprob:
    """A chosen token's natural-log probability and the ``top`` alternatives
    ``((id, logprob), ...)``, most probable first (ties by id)."""

    token_id: int
    logprob: float
    top: tuple[tuple[int, float], ...] = ()


@dataclasses.dataclass
class Completion:
    """One sample of a text result (OpenAI's "choice")."""

    index: int
    text: str
    token_ids: list[int] = dataclasses.field(default_factory=list)
    #: "stop" (end-of-text, a stop string or token) or "length" (max_tokens).
    finish_reason: str = "stop"
    logprobs: list[TokenLogprob] | None = None


@dataclasses.dataclass(frozen=True)
class Usage:
    """Token counts of a request: the prompt's (once) and every sample's completion."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Prompt and completion tokens."""
        return self.prompt_tokens + self.completion_tokens


@dataclasses.dataclass
class TextResult:
    """Generated texts (one per requested sample) and what produced them.

    ``choices`` has the details of each sample (token ids, finish reason,
    log-probabilities); a result built from texts alone gets choices that
    carry just the text.
    """

    texts: list[str]
    request: TextRequest
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    choices: list[Completion] = dataclasses.field(default_factory=list)
    usage: Usage = Usage()

    def __post_init__(self) -> None:
        if not self.choices:
            self.choices = [Completion(index=i, text=t) for i, t in enumerate(self.texts)]
        elif len(self.choices) != len(self.texts):
            raise ValueError(f"{len(self.choices)} choices for {len(self.texts)} texts")

    @property
    def text(self) -> str:
        """The first text."""
        return self.texts[0]

    def replace_texts(self, texts: list[str]) -> TextResult:
        """A copy with new texts (for result processors); each choice keeps its details."""
        choices = [dataclasses.replace(c, text=t) for c, t in zip(self.choices, texts,
                                                                     strict=True)]
        return TextResult(texts=list(texts), request=self.request, metadata=dict(self.metadata),
                          choices=choices, usage=self.usage)


@dataclasses.dataclass(frozen=True)
class TextEvent:
    """A piece of streamed text of sample ``index``.

    ``token_id`` is the token drawn (None for an echoed prompt); ``text`` may
    be empty (bytes of an unfinished character, or text a stop string may
    still claim). The last event of each sample has ``finish_reason`` set.
    """

    index: int
    text: str
    token_id: int | None = None
    finish_reason: str | None = None


@dataclasses.dataclass(frozen=True)
class TextDone:
    """The last item of a stream: the same result ``generate`` returns."""

    result: TextResult


@dataclasses.dataclass
class ImageResult:
    """Generated images as a uint8 array of shape (n, height, width, channels)."""

    images: npt.NDArray[np.uint8]
    request: ImageRequest
    labels: list[int] | None = None
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)


ResultProcessor = Callable[[Any, Any], Any]
StreamProcessor = Callable[[Any, Iterator[Any]], Iterator[Any]]


class Generator(abc.ABC, Generic[R]):
    """Base class of all generators.

    Subclasses set ``name`` (the generator name), ``modality`` and
    ``config_class``, and implement the payload methods used by :meth:`save`
    and :meth:`load`. Construct with a config or with keyword options:
    ``NgramGenerator(order=5)``.
    """

    name: ClassVar[str]
    modality: ClassVar[str]
    config_class: ClassVar[type[GeneratorConfig]] = GeneratorConfig
    #: Formats :meth:`export` writes (e.g. ``("onnx",)``).
    export_formats: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: GeneratorConfig | None = None, **options: Any) -> None:
        if config is None:
            config = self.config_class.from_mapping(options)
        elif options:
            config = config.replace(**options)
        if not isinstance(config, self.config_class):
            raise ConfigError(
                f"{type(self).__name__} needs a {self.config_class.__name__}, "
                f"got {type(config).__name__}"
            )
        self.config = config
        self.metrics: dict[str, Any] = {}
        self._plugin: tuple[str, str] = ("unknown", "unknown")
        self._result_processor: ResultProcessor | None = None
        self._stream_processor: StreamProcessor | None = None
        self._datasets: Callable[..., Dataset] | None = None

    def config_as(self, kind: type[C]) -> C:
        """The config as its own class, for typed access (``self.config_as(MyConfig)``)."""
        if not isinstance(self.config, kind):
            raise ConfigError(
                f"{type(self).__name__} has a {type(self.config).__name__}, not a {kind.__name__}")
        return self.config

    # -- engine wiring -------------------------------------------------------
    def _attach(self, *, plugin: tuple[str, str], result_processor: ResultProcessor | None,
                datasets: Callable[..., Dataset] | None = None,
                stream_processor: StreamProcessor | None = None) -> None:
        """Called by the engine: the plugin that made this generator, result hooks, datasets."""
        self._plugin = plugin
        self._result_processor = result_processor
        self._stream_processor = stream_processor
        self._datasets = datasets

    def dataset(self, data: Any) -> Dataset:
        """Resolve ``fit``/``evaluate`` data: a Dataset, a path, a list of lines, or (when
        created by an engine) a registered dataset name."""
        from .datasets import resolve

        if self._datasets is not None:
            return self._datasets(data, modality=self.modality)
        return resolve(data, {}, modality=self.modality)

    def adopt_origin(self, source: Generator[Any]) -> None:
        """Record that this generator comes from the plugin that made ``source``.

        For a generator that builds another (an ONNX export), so the new bundle's
        manifest names the right plugin and version.
        """
        self._plugin = source._plugin

    def _finish(self, request: Any, result: Any, kind: type[T]) -> T:
        """Record the seed, run the result processors, check they kept the type."""
        result.metadata.setdefault("seed", request.seed)
        if self._result_processor is not None:
            result = self._result_processor(request, result)
        if not isinstance(result, kind):
            raise TypeError(
                f"a result processor returned {type(result).__name__}, not {kind.__name__}")
        return result

    # -- capabilities ----------------------------------------------------------
    @property
    def trained(self) -> bool:
        """Whether the generator can generate (fitted or loaded)."""
        return True

    def fit(self, data: Dataset | str | os.PathLike[str], *, progress: Progress | None = None
            ) -> dict[str, Any]:
        """Train on ``data`` (a dataset or a path); returns training metrics."""
        raise UnsupportedOperationError(f"generator {self.name!r} cannot be trained")

    def evaluate(self, data: Dataset | str | os.PathLike[str]) -> dict[str, Any]:
        """Quality metrics on held-out ``data``."""
        raise UnsupportedOperationError(f"generator {self.name!r} has no evaluation metric")

    def export(self, path: str | os.PathLike[str], *, format: str, **options: Any) -> Path:
        """Write the model in another format (see ``export_formats``); ``options`` are the
        format's (e.g. ``quantize="int8"`` for a text model's ONNX export)."""
        if format not in self.export_formats:
            offered = ", ".join(self.export_formats) or "none"
            raise UnsupportedOperationError(
                f"generator {self.name!r} cannot export {format!r}; formats it exports: {offered}"
            )
        if options:
            return self._export(Path(path), format, **options)
        return self._export(Path(path), format)

    def _export(self, path: Path, format: str, **options: Any) -> Path:
        raise UnsupportedOperationError(f"generator {self.name!r} cannot export {format!r}")

    def export_onnx(self, path: str | os.PathLike[str]) -> Path:
        """Export an ONNX bundle for the torch-free runtime."""
        return self.export(path, format="onnx")

    # -- bundles -----------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save as a bundle directory, atomically: a crash leaves any old bundle intact."""
        self.require_trained("save")
        manifest = _bundle.Manifest(
            generator=self.name,
            plugin=self._plugin[0],
            plugin_version=self._plugin[1],
            config=self.config.to_dict(),
            metrics=dict(self.metrics),
            extra=self._manifest_extra(),
        )
        return _bundle.write_bundle(path, manifest, self._save_payload)

    @classmethod
    def load(cls: type[G], path: str | os.PathLike[str]) -> G:
        """Load a bundle written by :meth:`save` (checks format version and generator)."""
        loaded = _bundle.read_bundle(path)
        if loaded.manifest.generator != cls.name:
            raise ModelFormatError(
                f"bundle {str(path)!r} holds a {loaded.manifest.generator!r} model, "
                f"not {cls.name!r}"
            )
        config = cls.config_class.from_mapping(loaded.manifest.config)
        gen = cls(config)
        gen.metrics = dict(loaded.manifest.metrics)
        gen._plugin = (loaded.manifest.plugin, loaded.manifest.plugin_version)
        gen._load_payload(loaded.path, loaded.manifest)
        return gen

    @classmethod
    def from_file(cls: type[G], path: str | os.PathLike[str]) -> G:
        """Open a model file of a foreign format (see ``GeneratorSpec.file_suffixes``)."""
        raise UnsupportedOperationError(f"generator {cls.name!r} opens no model files")

    def _manifest_extra(self) -> dict[str, Any]:
        """Extra manifest fields (e.g. the tokenizer); JSON-compatible."""
        return {}

    @abc.abstractmethod
    def _save_payload(self, directory: Path) -> None:
        """Write the model's files into ``directory`` (a fresh temporary folder)."""

    @abc.abstractmethod
    def _load_payload(self, directory: Path, manifest: _bundle.Manifest) -> None:
        """Read the model's files from a verified bundle ``directory``."""

    def require_trained(self, action: str) -> None:
        """Raise UnsupportedOperationError unless fitted or loaded (``action`` names the use)."""
        if not self.trained:
            raise UnsupportedOperationError(
                f"cannot {action} an untrained {self.name!r} generator: call fit() or load a bundle"
            )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.config!r}>"


class TextGenerator(Generator["TextRequest"]):
    """Base class of text generators.

    Token-level generators derive from
    :class:`aigc_engine.decoding.TokenTextGenerator` and provide a token model;
    others (templates) implement :meth:`_generate` and may override
    :meth:`_events` to stream.
    """

    modality: ClassVar[str] = "text"

    def generate(self, request: TextRequest | str | None = None, **options: Any) -> TextResult:
        """Generate ``request.n`` texts; ``generate("prompt", max_tokens=20, seed=1)`` works too."""
        req = TextRequest.build(request, **options).with_seed()
        self.require_trained("generate with")
        if self._stream_processor is not None:
            for item in self._processed_events(req):
                if isinstance(item, TextDone):
                    return item.result
            raise AssertionError("the stream ended without its result")
        return self._finish(req, self._generate(req), TextResult)

    def stream(self, request: TextRequest | str | None = None, **options: Any
               ) -> Iterator[TextEvent | TextDone]:
        """Yield :class:`TextEvent` pieces of every sample as they are generated, then
        :class:`TextDone` with the result ``generate`` returns for the same request.

        The pieces of sample ``i`` join to ``result.texts[i]``. Stream filters
        (``aigc_process_stream``) see and may change the pieces; with result
        processors (``aigc_process_result``) installed, each sample's text is
        held back until the whole result has been processed.
        """
        req = TextRequest.build(request, **options).with_seed()
        self.require_trained("generate with")
        return self._processed_events(req)

    def stream_text(self, request: TextRequest | str | None = None, **options: Any
                    ) -> Iterator[str]:
        """The text of sample 0 piece by piece (a convenience over :meth:`stream`)."""
        for item in self.stream(request, **options):
            if isinstance(item, TextEvent) and item.index == 0 and item.text:
                yield item.text

    def _processed_events(self, req: TextRequest) -> Iterator[TextEvent | TextDone]:
        events: Iterator[Any] = self._events(req)
        if self._stream_processor is not None:
            events = self._stream_processor(req, events)
        return self._reassemble(req, events)

    def _reassemble(self, req: TextRequest, events: Iterator[Any]
                    ) -> Iterator[TextEvent | TextDone]:
        """Pass events on; the final result carries the texts the events spelled
        (after stream filters) and then goes through the result processors."""
        texts = [""] * req.n
        hold = self._result_processor is not None
        raw: TextResult | None = None
        for item in events:
            if isinstance(item, TextDone):
                raw = item.result
                continue
            if not isinstance(item, TextEvent) or not 0 <= item.index < req.n:
                raise TypeError(f"a text stream yielded {item!r}, not a TextEvent of this request")
            texts[item.index] += item.text
            if not hold:
                yield item
        if raw is None:
            raise TypeError("a text stream ended without its TextDone result")
        result = raw if texts == raw.texts else raw.replace_texts(texts)
        result = self._finish(req, result, TextResult)
        if hold:
            for c in result.choices:
                yield TextEvent(index=c.index, text=c.text, finish_reason=c.finish_reason)
        yield TextDone(result)

    @abc.abstractmethod
    def _generate(self, request: TextRequest) -> TextResult:
        """Generate ``request.n`` texts; ``request.seed`` is set."""

    def _events(self, request: TextRequest) -> Iterator[TextEvent | TextDone]:
        """Default: each whole text as one event, then the result."""
        result = self._generate(request)
        for c in result.choices:
            yield TextEvent(index=c.index, text=c.text, finish_reason=c.finish_reason)
        yield TextDone(result)


class ImageGenerator(Generator["ImageRequest"]):
    """Base class of image generators."""

    modality: ClassVar[str] = "image"

    def generate(self, request: ImageRequest | None = None, **options: Any) -> ImageResult:
        """Generate ``request.n`` images (``generate(n=16, seed=0)`` works too)."""
        req = ImageRequest.build(request, **options).with_seed()
        self.require_trained("generate with")
        return self._finish(req, self._generate(req), ImageResult)

    @abc.abstractmethod
    def _generate(self, request: ImageRequest) -> ImageResult:
        """Generate ``request.n`` images; ``request.seed`` is set."""
