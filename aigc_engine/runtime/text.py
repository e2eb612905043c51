"""Exported text models (``text-onnx``): onnxruntime + numpy + our tokenizers and
sampler, never torch.

One token model per graph kind, driven by the bundle's config (``graph``), so
any plugin that exports one of these kinds is served without code of its own:

* ``decoder``: a decoder with a key/value cache, optimum's names: inputs
  ``input_ids`` (B, T), ``attention_mask`` (B, P + T), ``position_ids``
  (B, T), ``past_key_values.{i}.key`` / ``.value`` (B, H, P, D); outputs
  ``logits`` (B, T, V) and ``present.{i}.key`` / ``.value`` (B, H, P + T, D).
  Prompts of different lengths are right-padded (mask 0) and the cache keeps
  every row from slot 0 (the runtime writes each step's new keys/values into
  the row's next free slot): a row's results do not depend on its batch.
  Prefill and decode run the same graph. A graph whose attention is
  onnxruntime's ``GroupQueryAttention`` (config ``shared_cache``; genai's own
  layout: the mask's ones are each row's first tokens) gets, at each step, the
  cache buffers bound as both ``past`` and ``present`` (IOBinding): the op
  writes the new keys/values into each row's next slot in place, and no step
  copies the cache (a plain decoder's ``present = past + new`` copies it all).
* ``recurrent``: ``input_ids`` (B, T), ``h0`` / ``c0`` (L, B, H) in, ``logits``
  (B, T, V), ``hn`` / ``cn`` out (never state baked into the graph).

Both follow the exporting generator's sliding window: a sequence that reaches
``context`` tokens is re-encoded from its last ``keep`` tokens (``context`` 0:
no window, as an LSTM's state carries everything). Every prompt starts with
``start_id``. The decoding loop (:mod:`aigc_engine.decoding`) does the rest.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from ..bundle import Manifest
from ..config import GeneratorConfig
from ..datasets import TextDataset
from ..decoding import TokenModel, TokenTextGenerator, text_metrics
from ..errors import ConfigError, ModelFormatError
from ..tokenizers import Tokenizer, load_tokenizer

MODEL_FILE = "model.onnx"
GENAI_FILE = "genai_config.json"


@dataclasses.dataclass(frozen=True)
class OnnxTextConfig(GeneratorConfig):
    """How to drive an exported text graph: its ``kind``, sizes, window, start token,
    the generator it was exported from, and ``threads`` (onnxruntime intra-op
    threads; one is fastest on small models here)."""

    kind: Literal["decoder", "recurrent"] = "decoder"
    n_layer: int = 1
    n_head: int = 1
    head_dim: int = 1
    hidden: int = 0
    vocab_size: int = 1
    context: int = 0
    keep: int = 0
    start_id: int = 0
    source: str = ""
    #: recurrent: evaluation reads the text as this many streams, in chunks of
    #: ``eval_chunk`` tokens (as the exporting generator evaluates).
    eval_streams: int = 8
    eval_chunk: int = 512
    quantized: bool = False
    #: decoder: attention is onnxruntime's GroupQueryAttention, which updates the
    #: past in place when ``present`` is bound to the same buffer (see the module
    #: docstring); the runtime then never copies the cache.
    shared_cache: bool = False
    threads: int = dataclasses.field(default=1, compare=False)

    def validate(self) -> None:
        for name in ("n_layer", "n_head", "head_dim", "vocab_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.context < 0 or not 0 <= self.keep <= self.context:
            raise ConfigError(f"need 0 <= keep <= context, got keep={self.keep}, "
                              f"context={self.context}")
        if self.kind == "recurrent" and self.hidden < 1:
            raise ConfigError(f"a recurrent graph needs hidden >= 1, got {self.hidden}")
        if self.threads < 0:
            raise ConfigError(f"threads must be >= 0 (0 = onnxruntime's default), got "
                              f"{self.threads}")

    def input_names(self) -> list[str]:
        """The graph's inputs, in order."""
        if self.kind == "recurrent":
            return ["input_ids", "h0", "c0"]
        past = [f"past_key_values.{i}.{kv}" for i in range(self.n_layer) for kv in ("key", "value")]
        return ["input_ids", "attention_mask", "position_ids", *past]

    def output_names(self) -> list[str]:
        """The graph's outputs, in order."""
        if self.kind == "recurrent":
            return ["logits", "hn", "cn"]
        return ["logits", *[f"present.{i}.{kv}" for i in range(self.n_layer)
                            for kv in ("key", "value")]]


def open_session(path: Path | bytes, cfg: OnnxTextConfig) -> Any:
    """An onnxruntime CPU session whose inputs and outputs are checked against ``cfg``."""
    import onnxruntime as ort  # type: ignore[import-untyped]

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = cfg.threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        sess = ort.InferenceSession(path if isinstance(path, bytes) else str(path), opts,
                                    providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        where = "the graph" if isinstance(path, bytes) else str(path)
        raise ModelFormatError(f"{where} is not a loadable ONNX model: {exc}") from None
    path = Path("model.onnx") if isinstance(path, bytes) else path
    got_in = [i.name for i in sess.get_inputs()]
    got_out = [o.name for o in sess.get_outputs()]
    if got_in != cfg.input_names() or got_out != cfg.output_names():
        raise ModelFormatError(
            f"{path}: the graph's inputs {got_in} and outputs {got_out} do not match the "
            f"bundle's config ({cfg.kind}, {cfg.n_layer} layers): expected inputs "
            f"{cfg.input_names()} and outputs {cfg.output_names()}")
    logits = sess.get_outputs()[0].shape
    if isinstance(logits[-1], int) and logits[-1] != cfg.vocab_size:
        raise ModelFormatError(f"{path}: the graph's logits have {logits[-1]} entries, the "
                               f"config says vocab_size={cfg.vocab_size}")
    return sess


#: Cache slots are allocated in multiples of this; a full cache doubles (up to the
#: window), so a decode copies its cache a few times, not at every step.
_SLOTS = 32


class _DecoderState:
    """Per batch: the cache ``(B, H, S, D)`` per layer and input, filled from slot 0
    (row ``b`` holds its ``lens[b]`` tokens in slots ``0 .. lens[b] - 1``, the rest
    masked), the slot mask ``(B, S)`` and the tokens each row's cache holds (for the
    window). A row's next position id is its length."""

    def __init__(self, past: list[np.ndarray], mask: np.ndarray, lens: np.ndarray,
                 ids: list[list[int]]) -> None:
        self.past = past
        self.mask = mask
        self.lens = lens
        self.ids = ids
        #: an onnxruntime IOBinding of ``past`` and of a logits buffer (shared_cache
        #: graphs), made at the first step; a new state (new buffers) starts without.
        self.binding: Any = None
        self.logits: np.ndarray = np.empty(0, dtype=np.float32)

    def resized(self, slots: int) -> _DecoderState:
        """The same rows with ``slots`` cache slots (at least the longest row's)."""
        have = self.mask.shape[1]
        if slots == have:
            return self
        if slots < have:
            past = [np.ascontiguousarray(x[:, :, :slots]) for x in self.past]
            mask = np.ascontiguousarray(self.mask[:, :slots])
        else:
            past = [np.pad(x, [(0, 0), (0, 0), (0, slots - have), (0, 0)]) for x in self.past]
            mask = np.pad(self.mask, [(0, 0), (0, slots - have)])
        return _DecoderState(past, mask, self.lens, self.ids)


def _slots_for(n: int) -> int:
    return -(-max(n, 1) // _SLOTS) * _SLOTS


class OnnxDecoderModel(TokenModel):
    """Prefill and step of a ``decoder`` graph (see the module docstring).

    The cache is right-padded: every row's keys sit in slots from 0 and masked slots
    only ever follow them, so a row's arithmetic (matrix products row by row,
    attention reductions whose masked tail adds exact zeros) does not depend on the
    other rows or the batch's slot count, which makes this model batch invariant
    (a server batches it freely). Not so with int8 graphs: dynamic quantization
    scales each activation matrix by its largest entry, over the whole batch.
    """

    def __init__(self, session: Any, cfg: OnnxTextConfig, tokenizer: Tokenizer) -> None:
        self.sess = session
        self.cfg = cfg
        self._tok = tokenizer
        self._out = cfg.output_names()
        self._past_names = cfg.input_names()[3:]
        self.batch_invariant = not cfg.quantized

    @property
    def tokenizer(self) -> Tokenizer:
        return self._tok

    def _run(self, ids: np.ndarray, mask: np.ndarray, pos: np.ndarray,
             past: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        feeds = {"input_ids": ids, "attention_mask": mask, "position_ids": pos}
        feeds.update(zip(self._past_names, past, strict=True))
        outs = self.sess.run(self._out, feeds)
        return outs[0], outs[1:]

    def _empty_past(self, b: int) -> list[np.ndarray]:
        c = self.cfg
        z = np.zeros((b, c.n_head, 0, c.head_dim), dtype=np.float32)
        return [z] * (2 * c.n_layer)

    def forward(self, rows: list[list[int]]) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
        """Whole rows as one right-padded batch from an empty cache: logits (B, T, V)
        (row ``b``'s are the first ``len(rows[b])``), the present keys/values and the
        mask (B, T)."""
        b, t = len(rows), max(len(r) for r in rows)
        ids = np.zeros((b, t), dtype=np.int64)
        mask = np.zeros((b, t), dtype=np.int64)
        for i, r in enumerate(rows):
            ids[i, :len(r)] = r
            mask[i, :len(r)] = 1
        # Padding takes its row's last position (a valid one for learned positions).
        pos = np.minimum(np.arange(t)[None, :], mask.sum(axis=1, keepdims=True) - 1)
        logits, present = self._run(ids, mask, pos, self._empty_past(b))
        return logits, present, mask

    def _encode(self, rows: list[list[int]]) -> tuple[np.ndarray, _DecoderState]:
        """Right-padded prefill of whole rows: each row's last logits and the state."""
        logits, present, mask = self.forward(rows)
        lens = mask.sum(axis=1)
        st = _DecoderState(present, mask, lens, [list(r) for r in rows])
        last = np.ascontiguousarray(logits[np.arange(len(rows)), lens - 1])
        return last, st.resized(_slots_for(int(lens.max()) + 1))

    def _grown(self, slots: int) -> int:
        """The slot count after ``slots`` (all used): doubled, at most the window's."""
        c = self.cfg.context
        return max(slots + _SLOTS, min(2 * slots, _slots_for(c))) if c else 2 * slots

    def _start(self, prompt: Sequence[int]) -> list[int]:
        row = [self.cfg.start_id, *(int(t) for t in prompt)]
        c = self.cfg
        return row[-c.keep:] if c.context and len(row) > c.context else row

    def prefill(self, prompts: Sequence[Sequence[int]]) -> tuple[Any, Any]:
        return self._encode([self._start(p) for p in prompts])

    def step(self, tokens: np.ndarray, state: Any) -> tuple[Any, Any]:
        st: _DecoderState = state
        for r, t in zip(st.ids, tokens.tolist(), strict=True):
            r.append(t)
        c = self.cfg
        b = len(st.ids)
        full = [i for i in range(b) if c.context and st.lens[i] >= c.context]
        if not full:
            return self._step(np.asarray(tokens, dtype=np.int64), st)
        # The window: rows whose cache is full are re-encoded from their last `keep`
        # tokens (the new one included); the others step as usual.
        rest = [i for i in range(b) if i not in set(full)]
        for i in full:
            st.ids[i] = st.ids[i][-c.keep:]
        slid_logits, slid = self._encode([st.ids[i] for i in full])
        if not rest:
            return slid_logits, slid
        rest_logits, sub = self._step(np.asarray(tokens, dtype=np.int64)[rest],
                                      self.select(st, np.asarray(rest)))
        joined = self.concat([sub, slid])
        order = np.empty(b, dtype=np.int64)
        order[np.asarray(rest + full)] = np.arange(b)
        logits = np.concatenate([rest_logits, slid_logits])[order]
        return logits, self.select(joined, order)

    def _step(self, tokens: np.ndarray, st: _DecoderState) -> tuple[np.ndarray, _DecoderState]:
        if self.cfg.shared_cache:
            return self._step_in_place(tokens, st)
        b = len(tokens)
        slots = st.mask.shape[1]
        mask = np.concatenate([st.mask, np.ones((b, 1), dtype=np.int64)], axis=1)
        logits, present = self._run(tokens.reshape(b, 1), mask, st.lens.reshape(b, 1), st.past)
        # The new keys/values (the graph appends them after the slots) go to each
        # row's next free slot, in place.
        if int(st.lens.max()) + 1 > slots:
            st = st.resized(self._grown(slots))
        rows = np.arange(b)
        for cache, new in zip(st.past, present, strict=True):
            cache[rows, :, st.lens] = new[:, :, slots]
        st.mask[rows, st.lens] = 1
        st.lens = st.lens + 1
        return np.ascontiguousarray(logits[:, -1]), st

    def _step_in_place(self, tokens: np.ndarray, st: _DecoderState
                       ) -> tuple[np.ndarray, _DecoderState]:
        """A step of a ``shared_cache`` graph: each cache buffer is bound as both its
        ``past`` input and its ``present`` output; the op writes row ``b``'s new
        keys/values into slot ``lens[b]``. The binding lives as long as the buffers
        (a state's are replaced, never reallocated in place), so a step rebinds only
        its three small inputs."""
        b = len(tokens)
        if int(st.lens.max()) + 1 > st.mask.shape[1]:
            st = st.resized(self._grown(st.mask.shape[1]))
        io = st.binding
        if io is None:
            io = st.binding = self.sess.io_binding()
            st.logits = np.empty((b, 1, self.cfg.vocab_size), dtype=np.float32)
            io.bind_output(self._out[0], "cpu", 0, np.float32, st.logits.shape,
                           st.logits.ctypes.data)
            for past, present, cache in zip(self._past_names, self._out[1:], st.past,
                                            strict=True):
                io.bind_input(past, "cpu", 0, np.float32, cache.shape, cache.ctypes.data)
                io.bind_output(present, "cpu", 0, np.float32, cache.shape, cache.ctypes.data)
        width = int(st.lens.max()) + 1
        io.bind_cpu_input("input_ids", np.ascontiguousarray(tokens, dtype=np.int64).reshape(b, 1))
        io.bind_cpu_input("attention_mask",
                          (np.arange(width)[None, :] <= st.lens[:, None]).astype(np.int64))
        io.bind_cpu_input("position_ids", np.ascontiguousarray(st.lens.reshape(b, 1)))
        self.sess.run_with_iobinding(io)
        rows = np.arange(b)
        st.mask[rows, st.lens] = 1
        st.lens = st.lens + 1
        return st.logits[:, -1].copy(), st

    def select(self, state: Any, rows: np.ndarray) -> Any:
        st: _DecoderState = state
        slots = _slots_for(int(st.lens[rows].max()) + 1) if len(rows) else _SLOTS
        slots = min(slots, st.mask.shape[1])
        return _DecoderState([np.ascontiguousarray(x[rows, :, :slots]) for x in st.past],
                             np.ascontiguousarray(st.mask[rows, :slots]), st.lens[rows],
                             [st.ids[int(i)] for i in rows])

    def concat(self, states: Sequence[Any]) -> Any:
        sts: list[_DecoderState] = list(states)
        slots = max(s.mask.shape[1] for s in sts)
        sts = [s.resized(slots) for s in sts]
        past = [np.concatenate([s.past[li] for s in sts]) for li in range(len(sts[0].past))]
        return _DecoderState(past, np.concatenate([s.mask for s in sts]),
                             np.concatenate([s.lens for s in sts]),
                             [r for s in sts for r in s.ids])

    def score(self, ids: np.ndarray) -> float:
        """Total negative log-likelihood (nats) of ``ids[1:]`` given what precedes, in
        windows of ``context`` with stride ``context // 2`` (as the exporter scores)."""
        c = self.cfg.context or len(ids)
        n = len(ids)
        starts = [0] if n <= c + 1 else list(range(0, n - 1 - c + 1, max(1, c // 2)))
        if starts[-1] + c < n - 1:
            starts.append(n - 1 - c)
        total, scored = 0.0, 0
        for s in starts:
            window = ids[s:s + c + 1]
            x = window[None, :-1].astype(np.int64)
            mask = np.ones_like(x)
            pos = np.arange(x.shape[1], dtype=np.int64)[None]
            logits, _ = self._run(x, mask, pos, self._empty_past(1))
            logp = _log_softmax(logits[0])
            nll = -logp[np.arange(len(window) - 1), window[1:]]
            first = max(scored, s + 1) - (s + 1)
            total += float(nll[first:].sum())
            scored = s + 1 + len(window) - 1
        return total


class OnnxRecurrentModel(TokenModel):
    """Prefill and step of a ``recurrent`` graph: state (h, c) in and out per layer.

    Prompts are prefilled one by one and a step's matrix products work row by row,
    so a row's results do not depend on its batch (batch invariant; not int8, whose
    activations are scaled over the whole batch)."""

    def __init__(self, session: Any, cfg: OnnxTextConfig, tokenizer: Tokenizer) -> None:
        self.sess = session
        self.cfg = cfg
        self._tok = tokenizer
        self.batch_invariant = not cfg.quantized

    @property
    def tokenizer(self) -> Tokenizer:
        return self._tok

    def _zeros(self, b: int) -> np.ndarray:
        return np.zeros((self.cfg.n_layer, b, self.cfg.hidden), dtype=np.float32)

    def _run(self, ids: np.ndarray, h: np.ndarray, c: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        logits, hn, cn = self.sess.run(["logits", "hn", "cn"],
                                       {"input_ids": ids, "h0": h, "c0": c})
        return logits, hn, cn

    def prefill(self, prompts: Sequence[Sequence[int]]) -> tuple[Any, Any]:
        rows = [[self.cfg.start_id, *(int(t) for t in p)] for p in prompts]
        logits, hs, cs = [], [], []
        for r in rows:  # rows of different lengths: one pass each (no padding in state)
            lg, h, c = self._run(np.asarray([r], dtype=np.int64), self._zeros(1), self._zeros(1))
            logits.append(lg[0, -1])
            hs.append(h)
            cs.append(c)
        return np.stack(logits), (np.concatenate(hs, axis=1), np.concatenate(cs, axis=1))

    def step(self, tokens: np.ndarray, state: Any) -> tuple[Any, Any]:
        h, c = state
        ids = np.asarray(tokens, dtype=np.int64).reshape(-1, 1)
        logits, h, c = self._run(ids, h, c)
        return np.ascontiguousarray(logits[:, -1]), (h, c)

    def select(self, state: Any, rows: np.ndarray) -> Any:
        h, c = state
        return h[:, rows], c[:, rows]

    def concat(self, states: Sequence[Any]) -> Any:
        return (np.concatenate([s[0] for s in states], axis=1),
                np.concatenate([s[1] for s in states], axis=1))

    def score(self, ids: np.ndarray, *, streams: int = 8, chunk: int = 512) -> float:
        """Total negative log-likelihood of ``ids[1:]`` as the lstm generator scores it:
        ``streams`` contiguous parts (each from a zero state), read in chunks that carry
        the state."""
        n = len(ids) - 1
        k = max(1, min(streams, n // 64))
        bounds = [n * i // k for i in range(k + 1)]
        width = max(bounds[i + 1] - bounds[i] for i in range(k))
        x = np.zeros((k, width), dtype=np.int64)
        y = np.full((k, width), -1, dtype=np.int64)
        for i in range(k):
            a, b = bounds[i], bounds[i + 1]
            x[i, :b - a] = ids[a:b]
            y[i, :b - a] = ids[a + 1:b + 1]
        total, h, c = 0.0, self._zeros(k), self._zeros(k)
        for s in range(0, width, chunk):
            logits, h, c = self._run(x[:, s:s + chunk], h, c)
            logp = _log_softmax(logits)
            ys = y[:, s:s + chunk]
            real = ys >= 0
            total -= float(np.take_along_axis(logp, np.where(real, ys, 0)[..., None],
                                              axis=-1)[..., 0][real].sum())
        return total


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    m = x.max(axis=-1, keepdims=True)
    out: np.ndarray = x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))
    return out


class OnnxTextGenerator(TokenTextGenerator):
    """An exported text model run by onnxruntime (``text-onnx``): generate, stream and
    evaluate exactly as the torch generator it came from, without torch."""

    name: ClassVar[str] = "text-onnx"
    config_class: ClassVar[type[GeneratorConfig]] = OnnxTextConfig

    def __init__(self, config: GeneratorConfig | None = None, **options: Any) -> None:
        super().__init__(config, **options)
        self._model: OnnxDecoderModel | OnnxRecurrentModel | None = None
        self._onnx: bytes | Path | None = None
        self.tokenizer: Tokenizer | None = None

    def set_model(self, onnx: bytes | Path, tokenizer: Tokenizer) -> None:
        """Use this graph (bytes or a file) with this tokenizer (checked against the config)."""
        cfg = self.cfg
        if tokenizer.vocab_size != cfg.vocab_size:
            raise ModelFormatError(
                f"the tokenizer has {tokenizer.vocab_size} tokens but the graph's config says "
                f"vocab_size={cfg.vocab_size}: they do not belong together")
        if not 0 <= cfg.start_id < tokenizer.vocab_size:
            raise ModelFormatError(f"start_id {cfg.start_id} is not a token id")
        sess = open_session(onnx, cfg)
        self._onnx = onnx
        self.tokenizer = tokenizer
        self._model = (OnnxDecoderModel(sess, cfg, tokenizer) if cfg.kind == "decoder"
                       else OnnxRecurrentModel(sess, cfg, tokenizer))

    def teacher_forced(self, rows: list[list[int]]) -> list[np.ndarray]:
        """Logits (len(row), V) at every position of each row, in one batch (decoders:
        right-padded) or row by row (recurrent graphs): for parity checks."""
        self.require_trained("run")
        m = self._model
        if isinstance(m, OnnxDecoderModel):
            logits, _, _ = m.forward(rows)
            return [logits[i, :len(r)] for i, r in enumerate(rows)]
        assert isinstance(m, OnnxRecurrentModel)
        return [m._run(np.asarray([r], dtype=np.int64), m._zeros(1), m._zeros(1))[0][0]
                for r in rows]

    @property
    def cfg(self) -> OnnxTextConfig:
        """The config, typed."""
        return self.config_as(OnnxTextConfig)

    @property
    def trained(self) -> bool:
        return self._model is not None

    def token_model(self) -> TokenModel:
        self.require_trained("generate with")
        assert self._model is not None
        return self._model

    def evaluate(self, data: Any) -> dict[str, Any]:
        """Bits per byte, nats per token and perplexity over the whole text (one token
        stream starting with the start token), as the torch generators report them."""
        self.require_trained("evaluate")
        assert self._model is not None and self.tokenizer is not None
        dataset = self.dataset(data)
        if not isinstance(dataset, TextDataset):
            raise ConfigError(f"{self.name} evaluates on text, got {type(dataset).__name__}")
        text = dataset.text()
        if not text.strip():
            raise ConfigError(f"the evaluation data {dataset.name!r} is empty")
        ids = np.asarray([self.cfg.start_id, *self.tokenizer.encode(text)], dtype=np.int64)
        model = self._model
        nats = model.score(ids, streams=self.cfg.eval_streams, chunk=self.cfg.eval_chunk) \
            if isinstance(model, OnnxRecurrentModel) else model.score(ids)
        return text_metrics(nats=nats, tokens=len(ids) - 1,
                            text_bytes=len(text.encode("utf-8")))

    def _manifest_extra(self) -> dict[str, Any]:
        assert self.tokenizer is not None
        return {"tokenizer": self.tokenizer.to_json()}

    def _save_payload(self, directory: Path) -> None:
        assert self.tokenizer is not None and self._onnx is not None
        data = self._onnx if isinstance(self._onnx, bytes) else self._onnx.read_bytes()
        (directory / MODEL_FILE).write_bytes(data)
        self.tokenizer.save(directory)
        write_graph_files(directory, self.cfg, self.tokenizer)

    def _load_payload(self, directory: Path, manifest: Manifest) -> None:
        tok = load_tokenizer(manifest.extra.get("tokenizer"), directory)
        try:
            self.set_model(directory / MODEL_FILE, tok)
        except ModelFormatError as exc:
            raise ModelFormatError(f"bundle {str(directory)!r}: {exc}") from None


def genai_config(cfg: OnnxTextConfig, tokenizer: Tokenizer) -> dict[str, Any]:
    """``genai_config.json`` for onnxruntime-genai (a decoder graph with optimum's names)."""
    names = {"input_ids": "input_ids", "attention_mask": "attention_mask",
             "position_ids": "position_ids", "past_key_names": "past_key_values.%d.key",
             "past_value_names": "past_key_values.%d.value"}
    return {
        "model": {
            "bos_token_id": cfg.start_id, "eos_token_id": tokenizer.eos_id,
            "pad_token_id": tokenizer.pad_id if tokenizer.pad_id is not None else cfg.start_id,
            "context_length": cfg.context or 4096, "vocab_size": cfg.vocab_size,
            # genai's decoder-only family that reads per-layer key/value names
            # ("gpt2" expects the combined past_%d layout of the old GPT-2 exports).
            "type": "llama",
            "decoder": {
                "session_options": {"intra_op_num_threads": 1, "provider_options": []},
                "filename": MODEL_FILE, "head_size": cfg.head_dim, "hidden_size":
                    cfg.head_dim * cfg.n_head, "num_attention_heads": cfg.n_head,
                "num_key_value_heads": cfg.n_head, "num_hidden_layers": cfg.n_layer,
                "inputs": names,
                "outputs": {"logits": "logits", "present_key_names": "present.%d.key",
                            "present_value_names": "present.%d.value"},
            },
        },
        "search": {"max_length": cfg.context or 4096, "do_sample": False, "num_beams": 1,
                   "num_return_sequences": 1, "past_present_share_buffer": False},
    }


def write_graph_files(directory: Path, cfg: OnnxTextConfig, tokenizer: Tokenizer) -> None:
    """The files beside ``model.onnx`` an exporter writes (genai config for decoders)."""
    if cfg.kind == "decoder":
        (directory / GENAI_FILE).write_text(json.dumps(genai_config(cfg, tokenizer), indent=2),
                                            encoding="utf-8")

