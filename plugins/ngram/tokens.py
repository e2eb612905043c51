"""The n-gram model as the engine's decoding loop sees it: a tokenizer over its
vocabulary and a token model whose chunks are drawn by the C++ core."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from aigc_engine.ngram import NgramModel
from aigc_engine.plugin_api import AheadChunk, Decoder, SamplingParams, Tokenizer, TokenModel

SPACE_TOKEN = "\u2581"  # the core's token for whitespace in char mode


class NgramTokenizer(Tokenizer):
    """Words (or characters) of an n-gram model's vocabulary; ``</s>`` is end-of-text.

    Text is words joined by single spaces (word mode) or characters with the
    core's whitespace token as a space (char mode); a line break is ``</s>``.
    Words outside the vocabulary encode as ``<unk>``.
    """

    kind = "ngram"

    def __init__(self, lm: NgramModel) -> None:
        self.lm = lm
        self.eos_id = NgramModel.eos_id
        self.char = lm.mode == "char"
        self._words: list[str] | None = None

    @property
    def words(self) -> list[str]:
        """Every word of the vocabulary by id (built on first use)."""
        if self._words is None:
            self._words = [self.lm.word(i) for i in range(self.lm.vocab_size)]
        return self._words

    @property
    def vocab_size(self) -> int:
        return int(self.lm.vocab_size)

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for i, line in enumerate(text.split("\n")):
            if i:
                ids.append(NgramModel.eos_id)
            ids.extend(int(t) for t in self.lm.ids(line))
        return ids

    def decode(self, ids: Any) -> str:
        return str(self.lm.detokenize([int(i) for i in ids]))

    def token_bytes(self, token_id: int) -> bytes:
        if token_id == NgramModel.eos_id:
            return b"\n"
        if token_id == NgramModel.bos_id:
            return b""
        word = self.words[token_id]
        return (" " if self.char and word == SPACE_TOKEN else word).encode("utf-8")

    def decoder(self, prefix: str = "") -> Decoder:
        return _NgramDecoder(self, at_line_start=not prefix or prefix.endswith("\n"))

    def to_json(self) -> dict[str, Any]:
        return {"kind": "ngram", "mode": self.lm.mode, "vocab_size": self.vocab_size}


class _NgramDecoder(Decoder):
    """Word mode puts one space between words of a line; char mode shows the
    whitespace token as a space; ``</s>`` is a line break."""

    def __init__(self, tokenizer: NgramTokenizer, *, at_line_start: bool) -> None:
        self._lm = tokenizer.lm
        self._words = tokenizer.words
        self._char = tokenizer.char
        self._line_start = at_line_start

    def push_many(self, token_ids: Any) -> str:
        ids = [int(t) for t in token_ids]
        if not ids:
            return ""
        # The core joins a run as push() would, from a line start.
        text = str(self._lm.detokenize(ids))
        if not self._char and not self._line_start and ids[0] != NgramModel.eos_id and text:
            text = " " + text
        last = ids[-1]
        if last == NgramModel.eos_id:
            self._line_start = True
        elif last != NgramModel.bos_id:
            self._line_start = False
        return text

    def push(self, token_id: int) -> str:
        if token_id == NgramModel.eos_id:
            self._line_start = True
            return "\n"
        if token_id == NgramModel.bos_id:
            return ""
        word = self._words[token_id]
        if self._char:
            return " " if word == SPACE_TOKEN else word
        piece = word if self._line_start else " " + word
        self._line_start = False
        return piece

    def flush(self) -> str:
        return ""


class NgramTokenModel(TokenModel):
    """Next-word distributions (``prefill``/``step``, full rows with ``<unk>``
    impossible) and C++ chunks (``sample_ahead``, exact top-k) of one model."""

    samples_ahead = True
    batch_invariant = True  # every row's distribution is computed apart

    def __init__(self, lm: NgramModel) -> None:
        self.lm = lm
        self._tokenizer = NgramTokenizer(lm)
        self._k = max(0, int(lm.order) - 1)
        # context() looks at the last order - 1 words and whether more precede them.
        self.ahead_context = self._k + 1

    @property
    def tokenizer(self) -> Tokenizer:
        return self._tokenizer

    def context(self, ids: Sequence[int]) -> tuple[list[int], bool]:
        """The part of ``ids`` the next word depends on, and whether a sentence
        starts before it: the words after the last ``</s>``, at most order - 1."""
        k = self._k
        if k == 0:
            return [], True
        n = len(ids)
        for i in range(n - 1, max(-1, n - k - 1), -1):
            if ids[i] == NgramModel.eos_id:
                return [int(t) for t in ids[i + 1:]], True
        if n <= k:
            return [int(t) for t in ids], True
        return [int(t) for t in ids[n - k:]], False

    def _rows(self, contexts: Sequence[Sequence[int]]) -> np.ndarray:
        rows = np.empty((len(contexts), self.lm.vocab_size), dtype=np.float32)
        for r, ctx in enumerate(contexts):
            tail, bos = self.context(ctx)
            rows[r] = self.lm.next_logprobs(tail, bos=bos)
        rows[:, NgramModel.unk_id] = -np.inf
        return rows

    def prefill(self, prompts: Sequence[Sequence[int]]) -> tuple[Any, Any]:
        state = [list(p) for p in prompts]
        return self._rows(state), state

    def step(self, tokens: np.ndarray, state: Any) -> tuple[Any, Any]:
        for ctx, t in zip(state, tokens, strict=True):
            ctx.append(int(t))
        return self._rows(state), state

    def select(self, state: Any, rows: np.ndarray) -> Any:
        return [state[int(i)] for i in rows]

    def concat(self, states: Sequence[Any]) -> Any:
        return [ctx for s in states for ctx in s]

    def sample_ahead(self, context: Sequence[int], history: tuple[np.ndarray, np.ndarray], *,
                     params: SamplingParams, seed: int, stream: int, first_step: int,
                     count: int, min_tokens: int, stop_at_eos: bool, ban_ids: Sequence[int],
                     logprobs: int | None) -> AheadChunk:
        tail, bos = self.context(context)
        d = self.lm.generate_chunk(
            tail, count, temperature=params.temperature, top_k=params.top_k,
            top_p=params.top_p, min_p=params.min_p,
            repetition_penalty=params.repetition_penalty,
            presence_penalty=params.presence_penalty,
            frequency_penalty=params.frequency_penalty, seed=seed, stream=stream,
            first_step=first_step, bos=bos, stop_at_eos=stop_at_eos,
            history_ids=history[0], history_counts=history[1], min_tokens=min_tokens,
            ban_ids=list(ban_ids), logprobs=-1 if logprobs is None else logprobs)
        return AheadChunk(tokens=d["tokens"], stopped_at_eos=bool(d["stopped_at_eos"]),
                          logprobs=d.get("logprobs"), top_ids=d.get("top_ids"),
                          top_logprobs=d.get("top_logprobs"))
