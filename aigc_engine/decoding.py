"""The one token loop of every text generator.

A text generator that works on tokens gives the engine a :class:`TokenModel`:
a tokenizer and two batched calls, ``prefill`` (prompts -> next-token logits
and a state) and ``step`` (one token per row -> logits and the new state). The
engine runs everything else here, once:

* all ``n`` samples of a request advance together as one batch; sample ``i``
  draws step ``t`` with the key ``(seed, stream=i, step=t)`` through the shared
  sampler, so a text depends on its own key only (not on ``n``, the batch
  layout or the thread count);
* penalties keep per-sequence counts incrementally (distinct tokens and their
  counts; a step costs the same after 10 or 10,000 tokens);
* stop rules: ``max_tokens``, the tokenizer's end-of-text (``stop_at_eos``),
  ``stop`` strings matched on the detokenised text across token boundaries
  (excluded from the text, as OpenAI does), ``stop_token_ids``, and
  ``min_tokens`` (end-of-text and stop tokens are banned, stop strings not
  checked, before that many tokens);
* per sample: the completion text (the prompt too with ``echo``), token ids,
  finish reason (``"stop"`` or ``"length"``), optional log-probabilities;
  ``usage`` for the request;
* incremental detokenisation (a character split over byte tokens is emitted
  once complete) and streaming events (:class:`TextEvent`) for every sample.

Penalties count the tokens of the completion (not the prompt), as OpenAI's
presence and frequency penalties do. **Log-probabilities** are those of the
distribution the draw used: after penalties, temperature, top-k, top-p and
min-p (``aigc_engine.sampling.filter_probs`` of the same row), so a token
outside the kept set has ``-inf`` and the alternatives are the most probable
kept tokens (fewer than asked when fewer are kept; a greedy draw has
probability 1). vLLM's default reports the raw model distribution instead, and
OpenAI's API the model's before sampling filters.

Tokens that end a sample (end-of-text, a stop token id) are counted in
``usage.completion_tokens`` (they were generated) but are not part of
``token_ids`` or the text.

Models that sample faster themselves (the n-gram model in C++) may implement
:meth:`TokenModel.sample_ahead`: the loop then asks for chunks of tokens
drawn with the same keys and semantics, and does all the rest as above. Chunks
start small and grow while they stay short, so output streams at once and a
Ctrl-C is seen within milliseconds.
"""

from __future__ import annotations

import abc
import dataclasses
import math
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from . import _core
from . import sampling as _sampling
from .errors import ConfigError
from .generator import (
    Completion,
    SamplingParams,
    TextDone,
    TextEvent,
    TextGenerator,
    TextRequest,
    TextResult,
    TokenLogprob,
    Usage,
)
from .tokenizers import Decoder, Tokenizer

__all__ = [
    "AheadChunk",
    "DecodeBatch",
    "RowByRow",
    "Sequence_",
    "TokenModel",
    "TokenTextGenerator",
    "cut_at_stop",
    "decode",
    "decode_events",
    "find_stop",
    "text_metrics",
]

_FLOAT_MAX = np.float32(np.finfo(np.float32).max)
_NO_IDS = np.zeros(0, dtype=np.uint32)
_NO_COUNTS = np.zeros(0, dtype=np.int32)
_NO_KEYS = np.zeros(0, dtype=np.uint64)
_NEG_INF = np.float32(-np.inf)
#: Longest chunk asked from sample_ahead, and the time a chunk should take at most.
_AHEAD_MAX = 4096
_AHEAD_SECONDS = 0.02


#: What DecodeBatch.step returns per drawn token: the sequence, the text it
#: released, the token, and the finish reason if it ended the sequence.
Step = tuple["Sequence_", str, int, "str | None"]


@dataclasses.dataclass
class AheadChunk:
    """Tokens drawn by :meth:`TokenModel.sample_ahead`, with optional log-probabilities.

    ``tokens`` holds up to the requested count; fewer means the last drawn token
    was the end-of-text (not included) and the sample stopped there.
    ``logprobs`` (float32, one per token, the end-of-text draw included when it
    stopped), ``top_ids`` and ``top_logprobs`` (``(rows, N)``) are set when
    asked for.
    """

    tokens: np.ndarray
    stopped_at_eos: bool = False
    logprobs: np.ndarray | None = None
    top_ids: np.ndarray | None = None
    top_logprobs: np.ndarray | None = None


class TokenModel(abc.ABC):
    """What a token-level text generator gives the engine's loop.

    Logits are ``(rows, vocab)`` float32 numpy arrays or torch tensors (CPU
    tensors are read without a copy; CUDA tensors are sampled on the device by
    ``torch.ops.aigc.sample``). The loop may modify returned logits in place.
    Tokens passed to :meth:`step` are an int64 numpy array, one per row.
    """

    @property
    @abc.abstractmethod
    def tokenizer(self) -> Tokenizer:
        """The tokenizer of prompts and outputs."""

    @abc.abstractmethod
    def prefill(self, prompts: Sequence[Sequence[int]]) -> tuple[Any, Any]:
        """Logits of the next token after each prompt, and the batch's state.

        A prompt may be empty: a model that needs a start token adds its own.
        """

    @abc.abstractmethod
    def step(self, tokens: np.ndarray, state: Any) -> tuple[Any, Any]:
        """Feed one token per row; the logits of the next token and the new state."""

    def select(self, state: Any, rows: np.ndarray) -> Any:
        """The state of some rows only (indices into the batch, ascending)."""
        return state

    def concat(self, states: Sequence[Any]) -> Any:
        """The state of batches joined in order (for requests joining a running batch)."""
        raise NotImplementedError(f"{type(self).__name__} cannot join batches")

    #: Set to True by a model that implements :meth:`sample_ahead`.
    samples_ahead: bool = False
    #: How many of the last context tokens :meth:`sample_ahead` needs (0: all of them);
    #: the loop then passes only those, so a chunk's cost does not grow with the text.
    ahead_context: int = 0
    #: True when a row's logits never depend on the other rows of its batch (each row
    #: computed apart). A batched kernel (a matrix product over the batch, attention
    #: over padded lengths) can change low bits with the batch's make-up; a server
    #: that promises batch-independent results runs such a model through
    #: :class:`RowByRow`.
    batch_invariant: bool = False

    def sample_ahead(self, context: Sequence[int], history: tuple[np.ndarray, np.ndarray], *,
                     params: SamplingParams, seed: int, stream: int, first_step: int,
                     count: int, min_tokens: int, stop_at_eos: bool, ban_ids: Sequence[int],
                     logprobs: int | None) -> AheadChunk:
        """Draw up to ``count`` tokens after ``context`` (prompt + completion so far).

        Token ``j`` of the chunk is drawn with the key ``(seed, stream,
        first_step + j)``, penalties over ``history`` (the completion's distinct
        ids and their counts) and the tokens drawn since, ``ban_ids`` impossible
        while ``first_step + j < min_tokens``; with ``stop_at_eos`` the chunk ends
        at an end-of-text (reported by ``stopped_at_eos``; not in ``tokens``).
        ``logprobs``: as the loop reports them (see the module docstring).
        """
        raise NotImplementedError(f"{type(self).__name__} does not sample ahead "
                                  "(samples_ahead is False)")


class RowByRow(TokenModel):
    """A batch-invariant view of any token model: every row is prefilled and stepped
    alone (batch of one), so its logits are exactly those it has on its own,
    whatever else is decoded beside it. Costs the batching speed-up."""

    batch_invariant = True

    def __init__(self, inner: TokenModel) -> None:
        self.inner = inner

    @property
    def tokenizer(self) -> Tokenizer:
        return self.inner.tokenizer

    def prefill(self, prompts: Sequence[Sequence[int]]) -> tuple[Any, Any]:
        outs = [self.inner.prefill([p]) for p in prompts]
        return _stack_rows([lg for lg, _ in outs]), [st for _, st in outs]

    def step(self, tokens: np.ndarray, state: Any) -> tuple[Any, Any]:
        outs = [self.inner.step(tokens[i:i + 1], st) for i, st in enumerate(state)]
        return _stack_rows([lg for lg, _ in outs]), [st for _, st in outs]

    def select(self, state: Any, rows: np.ndarray) -> Any:
        return [state[int(i)] for i in rows]

    def concat(self, states: Sequence[Any]) -> Any:
        return [st for s in states for st in s]


def _stack_rows(rows: list[Any]) -> Any:
    """One (B, V) array of (1, V) logits (numpy or torch)."""
    if all(isinstance(r, np.ndarray) for r in rows):
        return np.concatenate(rows)
    import torch

    return torch.cat(rows)


class Sequence_:
    """One sample being decoded: its tokens, counts, text and what it has released.

    Text handling is O(1) per token: released text is kept as pieces; only
    the unreleased end (shorter than the longest stop string, which no stop
    occurrence can start before) is searched and held back.
    """

    def __init__(self, request: TextRequest, index: int, prompt_ids: list[int],
                 tokenizer: Tokenizer) -> None:
        self.request = request
        self.index = index
        self.seed = int(request.seed) if request.seed is not None else 0
        self.prompt_ids = prompt_ids
        self.ids: list[int] = []
        self.drawn = 0
        self.finish: str | None = None
        self._out: list[str] = []
        self._held = ""
        self.logprobs: list[TokenLogprob] | None = [] if request.logprobs is not None else None
        self._decoder: Decoder = tokenizer.decoder(request.prompt)
        self._eos = tokenizer.eos_id
        self._stop_ids = frozenset(request.stop_token_ids)
        self._stops = request.stop
        self._longest_stop = max((len(s) for s in self._stops), default=0)
        sp = request.sampling
        self.penalised = (sp.repetition_penalty != 1.0 or sp.presence_penalty != 0.0
                          or sp.frequency_penalty != 0.0)
        # Distinct tokens in order of first use, and the count of each (dense).
        self._seen = np.empty(16, dtype=np.int32)
        self._seen_view = self._seen[:0]  # the distinct tokens so far (a view of _seen)
        self._seen_set: set[int] = set()
        self.n_seen = 0
        self._penalties = (sp.repetition_penalty, sp.presence_penalty, sp.frequency_penalty)
        self._counts = np.zeros(tokenizer.vocab_size, dtype=np.int32) if self.penalised else None
        # Item updates through a memoryview cost a fraction of numpy's scalar indexing.
        self._counts_mv = (memoryview(self._counts.data) if self._counts is not None
                           else None)
        self.draw_params = dataclasses.replace(
            sp, repetition_penalty=1.0, presence_penalty=0.0, frequency_penalty=0.0)
        # Chunks can be taken whole when no per-token rule applies.
        self.plain = not self._stops and not self._stop_ids and self.logprobs is None

    @property
    def text(self) -> str:
        """The completion text so far (released and held)."""
        return "".join(self._out) + self._held

    # -- what the sampler needs ----------------------------------------------------
    def ban_ids(self) -> list[int]:
        """The ids banned before ``min_tokens``: end-of-text (when it stops) and stop ids."""
        out = sorted(self._stop_ids)
        if self._eos is not None and self.request.stop_at_eos and self._eos not in self._stop_ids:
            out.append(self._eos)
        return out

    def banned(self) -> list[int]:
        """Token ids that must not be drawn now (end-of-text, stop ids before min_tokens)."""
        if self.drawn >= self.request.min_tokens:
            return []
        return self.ban_ids()

    def penalise(self, row: np.ndarray) -> None:
        """Apply this sequence's penalties to its logits row in place (float32)."""
        if self.n_seen:
            _core.penalize_counts(row, self._seen_view, self._counts, *self._penalties)

    def penalty_history(self) -> tuple[np.ndarray, np.ndarray]:
        """The distinct tokens of the completion and their counts (uint32, int32);
        empty when no penalty is on."""
        if self._counts is None:
            return _NO_IDS, _NO_COUNTS
        ids = self._seen[:self.n_seen]
        return ids.astype(np.uint32), self._counts[ids]

    def _first_use(self, token: int) -> None:
        """Add ``token`` to the distinct tokens (its count is kept by the caller)."""
        self._seen_set.add(token)
        if self.n_seen == len(self._seen):
            self._seen = np.concatenate([self._seen, np.empty_like(self._seen)])
        self._seen[self.n_seen] = token
        self.n_seen += 1
        self._seen_view = self._seen[:self.n_seen]

    # -- accepting drawn tokens ----------------------------------------------------------
    def accept(self, token: int, logprob: TokenLogprob | None = None) -> str:
        """Record one drawn token; returns the text it releases. Sets ``finish`` when done."""
        self.drawn += 1
        if self.logprobs is not None and logprob is not None:
            self.logprobs.append(logprob)
        req = self.request
        if ((token == self._eos and req.stop_at_eos) or token in self._stop_ids) and \
                self.drawn > req.min_tokens:
            if self.logprobs:
                self.logprobs.pop()  # the log-probabilities follow token_ids
            return self._end("stop")
        self.ids.append(token)
        if self._counts_mv is not None:  # penalised; this runs at every step
            if token not in self._seen_set:
                self._first_use(token)
            self._counts_mv[token] += 1
        piece = self._decoder.push(token)
        if self.drawn >= req.max_tokens:
            return self._end("length", piece)
        return self._release(piece) if piece else ""

    def accept_plain(self, tokens: np.ndarray) -> str:
        """Record a chunk of tokens none of which ends the sequence (no stop rule
        applies per token: see ``plain``); returns the text released."""
        if not len(tokens):
            return ""
        self.drawn += len(tokens)
        self.ids.extend(tokens.tolist())
        if self._counts_mv is not None:
            counts, seen = self._counts_mv, self._seen_set
            for t in tokens.tolist():
                if t not in seen:
                    self._first_use(t)
                counts[t] += 1
        piece = self._decoder.push_many(tokens)
        if self.drawn >= self.request.max_tokens:
            return self._end("length", piece)
        return self._release(piece) if piece else ""

    def _release(self, piece: str) -> str:
        """Add ``piece``; release what no stop string can still claim."""
        if not self._stops:
            self._out.append(piece)
            return piece
        text = self._held + piece
        if self.drawn >= self.request.min_tokens:
            at = find_stop(text, self._stops)
            if at >= 0:
                self._held = ""
                self.finish = "stop"
                return self._emit(text[:at])
        keep = _held_back(text, self._stops, self._longest_stop)
        self._held = text[len(text) - keep:] if keep else ""
        return self._emit(text[:len(text) - keep])

    def _emit(self, text: str) -> str:
        if text:
            self._out.append(text)
        return text

    def _end(self, reason: str, piece: str = "") -> str:
        """Finish: the decoder's held bytes and any held text are released (unless a
        stop string matches in them)."""
        out = self._release(piece + self._decoder.flush()) if self._stops else \
            self._emit(piece + self._decoder.flush())
        if self.finish is None:
            out += self._emit(self._held)
            self._held = ""
            self.finish = reason
        return out

    def completion(self) -> Completion:
        """The finished sample."""
        assert self.finish is not None
        prefix = self.request.prompt if self.request.echo else ""
        return Completion(index=self.index, text=prefix + "".join(self._out),
                          token_ids=list(self.ids), finish_reason=self.finish,
                          logprobs=self.logprobs)


def find_stop(text: str, stops: Sequence[str], *, start: int = 0) -> int:
    """Where the first of ``stops`` begins in ``text`` (searching from ``start``), or -1."""
    best = -1
    for stop in stops:
        p = text.find(stop, start)
        if p >= 0 and (best < 0 or p < best):
            best = p
    return best


def cut_at_stop(text: str, stops: Sequence[str]) -> str:
    """``text`` up to the first of ``stops`` (for generators that make whole texts)."""
    at = find_stop(text, stops)
    return text if at < 0 else text[:at]


def _held_back(text: str, stops: Sequence[str], longest: int) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of a stop string."""
    for k in range(min(longest - 1, len(text)), 0, -1):
        tail = text[-k:]
        if any(s.startswith(tail) for s in stops):
            return k
    return 0


def _as_numpy(logits: Any) -> tuple[np.ndarray | None, Any]:
    """A float32 C-contiguous numpy view of CPU logits, or (None, tensor) for CUDA tensors."""
    if isinstance(logits, np.ndarray):
        if logits.dtype != np.float32 or not logits.flags.c_contiguous:
            logits = np.ascontiguousarray(logits, dtype=np.float32)
        return logits, None
    device = getattr(logits, "device", None)
    if device is not None and getattr(device, "type", "cpu") != "cpu":
        return None, logits
    if hasattr(logits, "detach"):
        t = logits.detach()
        if t.dtype.is_floating_point and str(t.dtype) != "torch.float32":
            t = t.float()
        return np.ascontiguousarray(t.contiguous().numpy(), dtype=np.float32), None
    return np.ascontiguousarray(logits, dtype=np.float32), None


class DecodeBatch:
    """Sequences of any number of requests, decoded together on one model.

    ``add`` starts a request's samples (they join at the next step); ``step``
    advances every running sequence by one token (or a chunk, for models that
    sample ahead) and returns the events; finished sequences leave the batch.
    A sequence's tokens never depend on the other sequences in the batch.
    """

    def __init__(self, model: TokenModel, *, threads: int = 1,
                 chunk_seconds: float = _AHEAD_SECONDS) -> None:
        self.model = model
        self.tokenizer = model.tokenizer
        self.threads = threads
        #: For models that sample ahead: how long one sequence's chunk may take
        #: (a server keeps it short so that every sequence moves often).
        self.chunk_seconds = chunk_seconds
        self.running: list[Sequence_] = []
        self._pending: list[Sequence_] = []
        self._state: Any = None
        self._logits: np.ndarray | Any = None
        self._chunk: dict[int, int] = {}
        self._rows_key: tuple[int, ...] = ()
        self._params: _sampling.RowParams | None = None
        self._seeds = self._streams = _NO_KEYS
        self._want_logprobs = False

    def add(self, request: TextRequest) -> list[Sequence_]:
        """Start the ``n`` samples of a seeded request; returns them (in sample order)."""
        if request.seed is None:
            raise ConfigError("DecodeBatch.add needs a seeded request (use request.with_seed())")
        prompt_ids = self.tokenizer.encode(request.prompt)
        vocab = self.tokenizer.vocab_size
        bad = [t for t in request.stop_token_ids if not 0 <= t < vocab]
        if bad:
            raise ConfigError(
                f"stop_token_ids {bad} are outside the vocabulary of {vocab} tokens")
        seqs = [Sequence_(request, i, prompt_ids, self.tokenizer) for i in range(request.n)]
        self._pending.extend(seqs)
        return seqs

    @property
    def done(self) -> bool:
        """Whether no sequence is running or waiting."""
        return not self.running and not self._pending

    def cancel(self, seqs: Sequence[Sequence_]) -> None:
        """Stop these sequences (a client went away): they leave at the next step."""
        gone = {id(s) for s in seqs}
        self._pending = [s for s in self._pending if id(s) not in gone]
        for s in self.running:
            if id(s) in gone and s.finish is None:
                s.finish = "cancelled"
        if any(s.finish is not None for s in self.running) and not self.model.samples_ahead:
            keep = np.array([i for i, s in enumerate(self.running) if s.finish is None],
                            dtype=np.int64)
            self.running = [self.running[i] for i in keep]
            if self.running:
                self._state = self.model.select(self._state, keep)
                self._logits = self._logits[keep]
            else:
                self._state = self._logits = None
        else:
            self.running = [s for s in self.running if s.finish is None]

    def step(self, *, events: bool = True) -> list[Step]:
        """Advance every sequence; returns ``(sequence, text released, token, finish
        reason or None)`` for each drawn token. With ``events=False`` a model that
        samples ahead may report a whole chunk as one item (token -1)."""
        if self.model.samples_ahead:
            self.running.extend(self._pending)
            self._pending = []
            out: list[Step] = []
            for s in self.running:
                self._advance_ahead(s, out, events)
            self.running = [s for s in self.running if s.finish is None]
            return out
        self._join()
        if not self.running:
            return []
        out = []
        tokens = self._draw(out)
        if any(s.finish is not None for s in self.running):
            keep = np.array([i for i, s in enumerate(self.running) if s.finish is None],
                            dtype=np.int64)
            self.running = [self.running[i] for i in keep]
            if not self.running:
                self._state = self._logits = None
                return out
            self._state = self.model.select(self._state, keep)
            tokens = tokens[keep]
        self._logits, self._state = self.model.step(tokens, self._state)
        return out

    def _join(self) -> None:
        if not self._pending:
            return
        new, self._pending = self._pending, []
        logits, state = self.model.prefill([s.prompt_ids for s in new])
        if self.running:
            self._state = self.model.concat([self._state, state])
            self._logits = _concat_logits(self._logits, logits)
        else:
            self._state, self._logits = state, logits
        self.running.extend(new)

    def _keys(self) -> None:
        """Per-row parameters and keys, rebuilt when the batch's rows change."""
        key = tuple(id(s) for s in self.running)
        if key != self._rows_key:
            self._rows_key = key
            self._params = _sampling.RowParams([s.draw_params for s in self.running])
            self._seeds = np.array([s.seed for s in self.running], dtype=np.uint64)
            self._streams = np.array([s.index for s in self.running], dtype=np.uint64)
            self._want_logprobs = any(s.logprobs is not None for s in self.running)

    def _draw(self, out: list[Step]) -> np.ndarray:
        seqs = self.running
        rows, device_logits = _as_numpy(self._logits)
        if rows is None:
            return self._draw_torch(device_logits, out)
        if rows.ndim != 2 or rows.shape[0] != len(seqs) or \
                rows.shape[1] != self.tokenizer.vocab_size:
            raise ConfigError(
                f"{type(self.model).__name__} returned logits of shape {rows.shape} for "
                f"{len(seqs)} sequences and a vocabulary of {self.tokenizer.vocab_size}")
        if not rows.flags.writeable:
            rows = rows.copy()
        for r, s in enumerate(seqs):
            if s.drawn < s.request.min_tokens:
                rows[r, s.banned()] = _NEG_INF
            if s.n_seen:  # s.penalise(rows[r]), inlined: this runs at every step
                _core.penalize_counts(rows[r], s._seen_view, s._counts, *s._penalties)
        self._keys()
        assert self._params is not None
        steps = np.array([s.drawn for s in seqs], dtype=np.uint64)
        tokens = _sampling.sample_rows(rows, self._params, self._seeds, self._streams, steps,
                                       threads=self.threads)
        if self._want_logprobs:
            want = [r for r, s in enumerate(seqs) if s.logprobs is not None]
            lps = _logprobs(rows, tokens, seqs, want, self.threads)
            for r, s in enumerate(seqs):
                t = int(tokens[r])
                out.append((s, s.accept(t, lps.get(r)), t, s.finish))
        else:
            for s, t in zip(seqs, tokens.tolist(), strict=True):
                out.append((s, s.accept(t), t, s.finish))
        return tokens.astype(np.int64)

    def _draw_torch(self, logits: Any, out: list[Step]) -> np.ndarray:
        import torch

        from . import ops

        seqs = self.running
        x = logits.detach().float().clone()
        for r, s in enumerate(seqs):
            banned = s.banned()
            if banned:
                x[r, banned] = float("-inf")
            if s.n_seen:
                row = x[r].cpu().numpy()
                s.penalise(row)
                x[r] = torch.from_numpy(row).to(x.device)
        dev = x.device
        tokens_t = ops.sample(
            x, [s.draw_params for s in seqs],
            seed=torch.tensor([s.seed for s in seqs], dtype=torch.int64, device=dev),
            stream=torch.tensor([s.index for s in seqs], dtype=torch.int64, device=dev),
            step=torch.tensor([s.drawn for s in seqs], dtype=torch.int64, device=dev))
        tokens = tokens_t.cpu().numpy()
        want = [r for r, s in enumerate(seqs) if s.logprobs is not None]
        lps: dict[int, TokenLogprob] = {}
        if want:
            sub = _logprobs(x[want].cpu().numpy(), tokens[want], [seqs[r] for r in want],
                            list(range(len(want))), self.threads)
            lps = {want[k]: v for k, v in sub.items()}
        for r, s in enumerate(seqs):
            t = int(tokens[r])
            out.append((s, s.accept(t, lps.get(r)), t, s.finish))
        return tokens.astype(np.int64)

    def _advance_ahead(self, s: Sequence_, out: list[Step], events: bool) -> None:
        req = s.request
        key = id(s)
        count = min(self._chunk.get(key, 8), req.max_tokens - s.drawn)
        start = time.perf_counter()
        need = self.model.ahead_context
        if need and len(s.ids) >= need:
            context = s.ids[-need:]
        else:
            context = s.prompt_ids + s.ids
            if need:
                context = context[-need:]
        chunk = self.model.sample_ahead(
            context, s.penalty_history(), params=req.sampling, seed=s.seed,
            stream=s.index, first_step=s.drawn, count=count, min_tokens=req.min_tokens,
            stop_at_eos=req.stop_at_eos, ban_ids=s.ban_ids(), logprobs=req.logprobs)
        took = time.perf_counter() - start
        if took < self.chunk_seconds / 2:
            self._chunk[key] = min(_AHEAD_MAX, count * 2)
        elif took > self.chunk_seconds:
            self._chunk[key] = max(8, count // 2)
        toks = chunk.tokens
        eos = self.tokenizer.eos_id
        n = len(toks)
        if not events and s.plain:
            out.append((s, s.accept_plain(toks), -1, s.finish))
            if chunk.stopped_at_eos and s.finish is None:
                out.append((s, s.accept(int(eos if eos is not None else -1)), -1, s.finish))
        else:
            for j in range(n + (1 if chunk.stopped_at_eos else 0)):
                t = int(toks[j]) if j < n else int(eos if eos is not None else -1)
                lp = _ahead_logprob(chunk, j, t) if s.logprobs is not None else None
                out.append((s, s.accept(t, lp), t, s.finish))
                if s.finish is not None:
                    break
        if s.finish is not None:
            self._chunk.pop(key, None)


def _ahead_logprob(chunk: AheadChunk, j: int, token: int) -> TokenLogprob | None:
    if chunk.logprobs is None:
        return None
    top: tuple[tuple[int, float], ...] = ()
    if chunk.top_ids is not None and chunk.top_logprobs is not None:
        top = tuple((int(i), float(lp)) for i, lp in zip(chunk.top_ids[j], chunk.top_logprobs[j],
                                                         strict=True) if i >= 0)
    return TokenLogprob(token, float(chunk.logprobs[j]), top)


def _logprobs(rows: np.ndarray, tokens: np.ndarray, seqs: Sequence[Sequence_],
              want: list[int], threads: int) -> dict[int, TokenLogprob]:
    """Log-probabilities from the distribution each draw used (filter_probs of the row)."""
    sub = np.ascontiguousarray(rows[want])
    probs = _sampling.filter_probs(sub, [seqs[r].draw_params for r in want], threads=threads)
    out = {}
    with np.errstate(divide="ignore"):
        logp = np.log(probs)
    for k, r in enumerate(want):
        n = seqs[r].request.logprobs or 0
        row = logp[k]
        t = int(tokens[r])
        top: tuple[tuple[int, float], ...] = ()
        if n > 0:
            idx = np.argpartition(-row, min(n, len(row) - 1))[:n] if n < len(row) else \
                np.arange(len(row))
            idx = idx[np.isfinite(row[idx])]
            idx = idx[np.lexsort((idx, -row[idx]))]
            top = tuple((int(i), float(row[i])) for i in idx)
        out[r] = TokenLogprob(t, float(row[t]), top)
    return out


def _concat_logits(a: Any, b: Any) -> Any:
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return np.concatenate([a, b])
    import torch

    return torch.cat([a, b])


def _result(request: TextRequest, seqs: Sequence[Sequence_], prompt_tokens: int) -> TextResult:
    completions = [s.completion() for s in seqs]
    usage = Usage(prompt_tokens=prompt_tokens, completion_tokens=sum(s.drawn for s in seqs))
    return TextResult(texts=[c.text for c in completions], request=request,
                      choices=completions, usage=usage)


def decode(model: TokenModel, request: TextRequest, *, threads: int = 1) -> TextResult:
    """Run a seeded request to the end; the result of every sample."""
    batch = DecodeBatch(model, threads=threads)
    seqs = batch.add(request)
    while not batch.done:
        batch.step(events=False)
    return _result(request, seqs, len(seqs[0].prompt_ids))


def decode_events(model: TokenModel, request: TextRequest, *, threads: int = 1
                  ) -> Iterator[TextEvent | TextDone]:
    """Run a seeded request, yielding a :class:`TextEvent` per drawn token of every
    sample (and a last one per sample with its finish reason), then :class:`TextDone`
    with the same result :func:`decode` returns."""
    batch = DecodeBatch(model, threads=threads)
    seqs = batch.add(request)
    if request.echo and request.prompt:
        for s in seqs:
            yield TextEvent(index=s.index, text=request.prompt)
    while not batch.done:
        for s, text, token, finish in batch.step():
            yield TextEvent(index=s.index, text=text, token_id=token, finish_reason=finish)
    yield TextDone(_result(request, seqs, len(seqs[0].prompt_ids)))


class TokenTextGenerator(TextGenerator):
    """Base class of text generators that work on tokens.

    A subclass implements :meth:`token_model`; generation, streaming, stop
    rules, penalties, log-probabilities and usage come from this module's
    loop, the same for every such generator.
    """

    #: Sampler threads over the rows of a batch (results do not depend on it).
    sampler_threads: int = 1

    @abc.abstractmethod
    def token_model(self) -> TokenModel:
        """The model the loop drives (after fit or load)."""

    def _generate(self, request: TextRequest) -> TextResult:
        return decode(self.token_model(), request, threads=self.sampler_threads)

    def _events(self, request: TextRequest) -> Iterator[TextEvent | TextDone]:
        return decode_events(self.token_model(), request, threads=self.sampler_threads)


def text_metrics(*, nats: float, tokens: int, text_bytes: int) -> dict[str, Any]:
    """The metrics every text generator's ``evaluate`` reports, from the total
    negative log-likelihood in nats of a text of ``text_bytes`` UTF-8 bytes
    scored as ``tokens`` predictions: ``bits_per_byte`` (comparable across
    tokenizers), ``nats_per_token``, ``perplexity`` (per token), ``tokens``,
    ``bytes``."""
    if tokens <= 0 or text_bytes <= 0:
        raise ConfigError(f"nothing to evaluate: {tokens} tokens in {text_bytes} bytes")
    return {"bits_per_byte": nats / math.log(2.0) / text_bytes,
            "nats_per_token": nats / tokens,
            "perplexity": math.exp(nats / tokens) if nats / tokens < 700 else math.inf,
            "tokens": tokens, "bytes": text_bytes}
