"""The shared token sampler: the typed numpy face of the C++ core.

Every text generator turns scores into tokens through this module (or its torch
twin, :mod:`aigc_engine.ops`), so temperature, top-k, top-p, min-p and the
penalties mean the same thing everywhere. This module never imports torch.

Semantics of one row of ``V`` logits (natural-log scores; ``-inf`` = impossible):

1. **Penalties** over the row's token history (ids in ``[0, V)``; negative ids
   are padding and ignored): for each *distinct* token ``t`` seen ``c`` times,
   the repetition penalty ``r`` divides a positive logit and multiplies a
   non-positive one (Hugging Face / vLLM), then ``c * frequency_penalty +
   presence_penalty`` is subtracted (OpenAI's definitions). A penalised logit
   that overflows saturates at the largest float32.
2. **Temperature**: weights ``w = exp((x - max) / T)``. ``T == 0`` is greedy:
   the first maximum of the penalised row, whatever the other filters say.
3. **Top-k** (``0 < top_k < V``): keeps the tokens whose logit is ``>=`` the
   k-th largest (counted with multiplicity), so tokens tied with the k-th are
   all kept.
4. **Top-p** (``top_p < 1``), on the top-k-renormalised distribution: keeps
   the smallest set *by value* whose mass reaches ``top_p``: the largest
   weight ``t`` with ``sum(w[w >= t]) >= top_p * sum(w)``; tokens tied at the
   threshold are all kept.
5. **Min-p** (``min_p > 0``): keeps tokens with ``p >= min_p * max(p)``.
6. **One draw** from the renormalised kept weights, by inverse CDF in token id
   order with one uniform number from Philox4x32-10 keyed by ``(seed, stream,
   step)``: the same key gives the same token whatever the thread count, the
   batch size or the row's position in the batch. (Top-p alone with
   ``top_p >= 0.5`` is drawn by rejection rounds with the same distribution,
   each round's number from the same key; see ``docs/sampling.md``.)

Off switches: ``top_k <= 0`` or ``>= V``, ``top_p >= 1``, ``min_p <= 0``,
``repetition_penalty == 1``, ``presence_penalty == frequency_penalty == 0``.
Errors (``ValueError``, naming the row and the value): NaN or ``+inf`` logits, a
row without a finite logit, ``temperature < 0`` or not finite, ``top_p <= 0``,
``min_p > 1``, ``repetition_penalty <= 0``, non-finite penalties, history ids
``>= V``.

Arithmetic is float32 for the weights (a shared polynomial ``exp``, exact 1 at
the maximum, 0 below about ``exp(-87.7)`` relative to the maximum, so such
tokens can be kept but are never drawn) and float64 for the sums. See
``docs/sampling.md`` for the comparison with HF, vLLM and llama.cpp.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from aigc_engine import _core
from aigc_engine.errors import ConfigError
from aigc_engine.generator import SamplingParams

__all__ = [
    "PARAMS_DTYPE",
    "RowParams",
    "SamplingParams",
    "apply_penalties",
    "cuda_status",
    "draw_uniform",
    "filter_probs",
    "kept_mask",
    "penalize_counts",
    "sample",
    "sample_rows",
]

ParamsArg: TypeAlias = "SamplingParams | Sequence[SamplingParams] | None"
KeyArg: TypeAlias = "int | Sequence[int] | npt.ArrayLike"
HistoryArg: TypeAlias = "Sequence[int] | Sequence[Sequence[int]] | npt.ArrayLike | None"


def _as_rows(logits: npt.ArrayLike) -> tuple[np.ndarray, bool]:
    if (
        isinstance(logits, np.ndarray)
        and logits.dtype == np.float32
        and logits.ndim == 2
        and logits.flags.c_contiguous
        and logits.shape[1] > 0
    ):
        return logits, False
    arr = np.asarray(logits)
    if arr.dtype.kind not in "fiu":
        raise ConfigError(f"logits must be a numeric array, got dtype {arr.dtype}")
    single = arr.ndim == 1
    if arr.ndim not in (1, 2):
        raise ConfigError(
            f"logits must be 1-D (vocab,) or 2-D (rows, vocab), got shape {arr.shape}"
        )
    rows = np.ascontiguousarray(arr.reshape(1, -1) if single else arr, dtype=np.float32)
    if rows.shape[1] == 0:
        raise ConfigError(f"logits rows must hold at least one score, got shape {arr.shape}")
    return rows, single


#: The packed layout of one row's sampling parameters: the core's
#: ``sampling::SamplingParams`` (csrc/sampling/sampling.hpp), shared by the C++
#: sampler, the CUDA kernels and both Python faces. Fields in struct order.
PARAMS_DTYPE: np.dtype[Any] = np.dtype(_core.SAMPLING_PARAMS_DTYPE)
_PARAM_NAMES: tuple[str, ...] = tuple(PARAMS_DTYPE.names or ())
_CACHE = "_aigc_packed"  # the packed array of a SamplingParams, kept in its __dict__


def _pack(plist: Sequence[SamplingParams]) -> np.ndarray:
    out = np.empty(len(plist), dtype=PARAMS_DTYPE)
    for name in _PARAM_NAMES:
        out[name] = [getattr(p, name) for p in plist]
    return out


def _packed_one(params: SamplingParams) -> np.ndarray:
    """The (1,) packed array of one SamplingParams, made once per object (it is frozen)."""
    cached: np.ndarray | None = params.__dict__.get(_CACHE)
    if cached is None:
        cached = _pack([params])
        cached.flags.writeable = False
        params.__dict__[_CACHE] = cached  # frozen dataclass: not through __setattr__
    return cached


def _packed(params: ParamsArg, rows: int) -> np.ndarray:
    """Packed parameters: shape (1,) for one SamplingParams (every row), else (rows,)."""
    if params is None:
        return _packed_one(_DEFAULT)
    if isinstance(params, SamplingParams):
        return _packed_one(params)
    plist = list(params)
    if len(plist) != rows:
        raise ConfigError(f"got {len(plist)} SamplingParams for {rows} rows")
    for i, p in enumerate(plist):
        if not isinstance(p, SamplingParams):
            raise ConfigError(f"params[{i}] must be a SamplingParams, got {type(p).__name__}")
    return _pack(plist)


_DEFAULT = SamplingParams()


def _history_csr(
    history: HistoryArg, rows: int, single: bool, vocab: int
) -> tuple[np.ndarray | None, np.ndarray | None]:
    if history is None:
        return None, None
    if single:
        per_row: list[Any] = [history]
    elif isinstance(history, np.ndarray) and history.ndim == 2:
        per_row = list(history)
    else:
        per_row = list(history)  # type: ignore[arg-type]
    if len(per_row) != rows:
        raise ConfigError(f"got {len(per_row)} histories for {rows} rows")
    parts = []
    for r, h in enumerate(per_row):
        a = np.asarray(h if h is not None else [])
        if a.size and a.dtype.kind not in "iu":
            raise ConfigError(
                f"history of row {r} must hold integer token ids, got dtype {a.dtype}")
        a = a.astype(np.int64, copy=False).reshape(-1)
        if a.size and int(a.max()) >= vocab:
            bad = int(a[a >= vocab][0])
            raise ConfigError(
                f"history of row {r} holds token id {bad}, out of range for a vocabulary of {vocab}"
            )
        parts.append(a)
    offsets = np.zeros(rows + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(a) for a in parts])
    tokens = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    tokens = np.maximum(tokens, -1).astype(np.int32)  # negative ids are padding
    return tokens, offsets


def _threads(threads: int) -> int:
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 0:
        raise ConfigError(f"threads must be an int >= 0 (0 = all cores), got {threads!r}")
    return int(threads)


def sample(
    logits: npt.ArrayLike,
    params: ParamsArg = None,
    *,
    seed: KeyArg,
    stream: KeyArg = 0,
    step: KeyArg = 0,
    history: HistoryArg = None,
    threads: int = 0,
) -> Any:
    """Draws one token per row.

    Args:
        logits: ``(V,)`` or ``(rows, V)`` scores (float32 rows are used without
            a copy; other dtypes are converted).
        params: one :class:`SamplingParams` for every row, a sequence with one
            per row, or ``None`` for the defaults (plain sampling at T = 1).
        seed, stream, step: the key of each row's draw, ints or arrays of
            ``rows`` ints in ``[0, 2**64)``. A draw depends on its key only.
        history: earlier token ids for the penalties: a sequence of ids for
            1-D logits, one sequence per row (or a padded 2-D array, negative
            ids = padding) for 2-D logits.
        threads: worker threads over rows (0 = all cores); no effect on results.

    Returns:
        An ``int`` for 1-D logits, else an ``int64`` array of shape ``(rows,)``
        (the dtype :func:`aigc_engine.ops.sample` returns too).

    Raises:
        ValueError: invalid parameters (``ConfigError``) or rows (NaN, ``+inf``,
            no finite logit), with the row and the value.
    """
    rows, single = _as_rows(logits)
    b = rows.shape[0]
    packed = _packed(params, b)
    tokens = offsets = None
    if history is not None:
        tokens, offsets = _history_csr(history, b, single, rows.shape[1])
    if type(threads) is not int or threads < 0:
        threads = _threads(threads)
    # Positional: the keys (ints or arrays) are checked and converted by the core.
    out = _core.sample_batch(rows, packed, seed, stream, step, tokens, offsets, threads)
    return int(out[0]) if single else out.astype(np.int64)


class RowParams:
    """The sampling parameters of a batch's rows in the core's layout, built once.

    For loops that sample the same rows many times (the engine's decoding
    loop): :func:`sample_rows` then skips the per-call conversion that
    :func:`sample` does.
    """

    def __init__(self, params: Sequence[SamplingParams]) -> None:
        self.rows = len(params)
        #: One PARAMS_DTYPE entry per row.
        self.packed = _packed(list(params), self.rows)


def sample_rows(logits: np.ndarray, params: RowParams, seeds: np.ndarray, streams: np.ndarray,
                steps: np.ndarray, *, threads: int = 1) -> np.ndarray:
    """:func:`sample` without conversions: float32 C-contiguous ``(rows, V)`` logits,
    uint64 key arrays of ``rows`` values, no history (apply penalties first with
    :func:`penalize_counts`). Returns int32 ids (the core's own array)."""
    out: np.ndarray = _core.sample_batch(logits, params.packed, seeds, streams, steps, None, None,
                                         threads)
    return out


def penalize_counts(row: np.ndarray, ids: np.ndarray, counts: np.ndarray,
                    params: SamplingParams) -> None:
    """Apply ``params``' penalties in place to one float32 row, for the distinct
    token ``ids`` (int32) seen ``counts[id]`` times (int32, one entry per token):
    the formula :func:`sample` applies to a history, from counts kept incrementally."""
    _core.penalize_counts(row, ids, counts, params.repetition_penalty, params.presence_penalty,
                          params.frequency_penalty)


def _filter(
    logits: npt.ArrayLike, params: ParamsArg, history: HistoryArg, threads: int, probs: bool
) -> np.ndarray:
    rows, single = _as_rows(logits)
    b, v = rows.shape
    tokens, offsets = _history_csr(history, b, single, v)
    result = _core.filter_batch(
        rows, _packed(params, b), tokens, offsets, _threads(threads), probs, not probs
    )
    out: np.ndarray = result[0] if probs else result[1]
    return out[0] if single else out


def filter_probs(
    logits: npt.ArrayLike, params: ParamsArg = None, *, history: HistoryArg = None, threads: int = 0
) -> np.ndarray:
    """The distribution :func:`sample` draws from: float32, same shape as ``logits``.

    Zero outside the kept set; each row sums to 1 (a one-hot row for T = 0).
    """
    return _filter(logits, params, history, threads, probs=True)


def kept_mask(
    logits: npt.ArrayLike, params: ParamsArg = None, *, history: HistoryArg = None, threads: int = 0
) -> np.ndarray:
    """The kept set after all filters: a bool array shaped like ``logits``.

    ``True`` for finite tokens that survive top-k, top-p and min-p (the first
    maximum only for T = 0). Tokens whose weight underflows to 0 may be kept
    but are never drawn.
    """
    return _filter(logits, params, history, threads, probs=False)


def apply_penalties(
    logits: npt.ArrayLike, params: ParamsArg = None, *, history: HistoryArg = None
) -> np.ndarray:
    """The logits after the penalties only (float32, shaped like ``logits``)."""
    rows, single = _as_rows(logits)
    b, v = rows.shape
    tokens, offsets = _history_csr(history, b, single, v)
    out: np.ndarray = _core.penalize_batch(rows, _packed(params, b), tokens, offsets)
    return out[0] if single else out


def draw_uniform(seed: int, stream: int = 0, step: int = 0) -> float:
    """The uniform number in ``[0, 1)`` used by the draw keyed by ``(seed, stream, step)``
    (the first round's, for a top-p draw by rejection)."""
    return float(_core.draw_uniform(seed, stream, step))


def cuda_status() -> tuple[bool, str]:
    """Whether the CUDA sampling kernels are built and usable here, and why not.

    Returns ``(True, description)`` when ``aigc_engine._cuda`` was built and a
    CUDA device is visible, else ``(False, reason)``. Never imports torch.
    """
    try:
        from aigc_engine import _cuda  # type: ignore[attr-defined]
    except ImportError as exc:
        return False, (
            "aigc_engine._cuda is not built (no CUDA compiler when the package was built"
            f", or it failed to load: {exc})"
        )
    ok, reason = _cuda.status()
    return bool(ok), str(reason)
