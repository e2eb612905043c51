"""Tests of the shared sampler (aigc_engine.sampling, the C++ core behind it).

References written here: a float64 implementation of the documented
semantics, and Hugging Face-style warpers (temperature, top-k, top-p, min-p,
repetition penalty) following transformers' documented code, in numpy.
Statistical tests use fixed seeds, so they give the same result every run.
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from aigc_engine import _core
from aigc_engine import sampling as S
from aigc_engine.sampling import SamplingParams as P

# ----------------------------------------------------------------- references


def ref_penalties(
    x: np.ndarray, hist: list[int], rep: float, pres: float, freq: float
) -> np.ndarray:
    """HF/vLLM repetition penalty then OpenAI frequency/presence, per distinct token."""
    out = x.astype(np.float64).copy()
    ids, counts = np.unique([t for t in hist if t >= 0], return_counts=True)
    for t, c in zip(ids, counts, strict=True):
        v = out[t]
        v = v / rep if v > 0 else v * rep
        out[t] = v - c * freq - pres
    return out


def ref_filter(x: np.ndarray, p: P) -> tuple[np.ndarray, np.ndarray, float]:
    """(kept mask, probabilities, margin) in float64. margin: the distance of the
    top-p / min-p decisions from their boundaries (small = ambiguous in float32)."""
    x = x.astype(np.float64)
    v = len(x)
    finite = np.isfinite(x)
    if p.temperature == 0:
        keep = np.zeros(v, bool)
        keep[int(np.argmax(x))] = True
        return keep, keep.astype(np.float64), math.inf
    keep = finite.copy()
    margin = math.inf
    if 0 < p.top_k < v:
        vals = np.sort(x[finite])[::-1]
        if len(vals) >= p.top_k:
            keep &= x >= vals[p.top_k - 1]
    m = x[keep].max()
    w = np.where(keep, np.exp((np.where(keep, x, m) - m) / p.temperature), 0.0)
    probs = w / w.sum()
    if p.top_p < 1:
        order = np.argsort(-probs, kind="stable")
        sp = probs[order]
        cs = np.cumsum(sp)
        j = int(np.searchsorted(cs, p.top_p * (1 - 1e-15)))
        j = min(j, v - 1)
        thr = sp[j]
        margin = min(margin, abs(cs[j] - p.top_p), abs(cs[j - 1] - p.top_p) if j > 0 else 1.0)
        # The sampler compares float32 weights: a neighbour within float32 resolution of
        # the threshold weight counts as tied with it.
        below = sp[j + 1 :][sp[j + 1 :] < thr]
        if len(below) and (thr - below[0]) / thr < 1e-6:
            margin = 0.0
        keep &= probs >= thr
    if p.min_p > 0:
        ratio = probs / probs.max()
        keep &= ratio >= p.min_p
        with np.errstate(divide="ignore"):
            margin = min(
                margin, float(np.min(np.abs(np.log(ratio[probs > 0]) - math.log(p.min_p))))
            )
    w = np.where(keep, w, 0.0)
    return keep, w / w.sum(), margin


def hf_warpers(x: np.ndarray, p: P) -> np.ndarray:
    """Kept set by HF's warpers in order: temperature, top-k, top-p, min-p (float32)."""
    s = x.astype(np.float32) / np.float32(p.temperature)
    if p.top_k > 0:
        k = min(p.top_k, len(s))
        kth = np.sort(s)[::-1][k - 1]
        s = np.where(s < kth, -np.inf, s)  # TopKLogitsWarper

    def softmax(a: np.ndarray) -> np.ndarray:
        e = np.exp(a - a.max())
        return e / e.sum()

    if p.top_p < 1:  # TopPLogitsWarper: ascending sort, remove cumprobs <= 1 - top_p
        order = np.argsort(s, kind="stable")
        cum = np.cumsum(softmax(s[order]))
        remove = cum <= (1 - p.top_p)
        remove[-1] = False
        s = s.copy()
        s[order[remove]] = -np.inf
    if p.min_p > 0:  # MinPLogitsWarper
        pr = softmax(s)
        remove = pr < p.min_p * pr.max()
        s = np.where(remove, -np.inf, s)
    return np.isfinite(s)


def chi2_critical(df: int, z: float) -> float:
    """Wilson-Hilferty approximation of the chi-square quantile at normal quantile z."""
    a = 2.0 / (9.0 * df)
    return df * (1.0 - a + z * math.sqrt(a)) ** 3


Z_001 = 3.0902  # one-sided normal quantile for significance 0.001

# ----------------------------------------------------------------- Philox


def test_philox_known_answers() -> None:
    # Random123 kat_vectors, philox4x32_10.
    assert _core.philox4x32_10([0, 0, 0, 0], [0, 0]) == [
        0x6627E8D5,
        0xE169C58D,
        0xBC57AC4C,
        0x9B00DBD8,
    ]
    assert _core.philox4x32_10([0xFFFFFFFF] * 4, [0xFFFFFFFF] * 2) == [
        0x408F276D,
        0x41C83B0E,
        0xA20BC7C6,
        0x6D5451FD,
    ]
    assert _core.philox4x32_10(
        [0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344], [0xA4093822, 0x299F31D0]
    ) == [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]


def test_draw_uniform_is_keyed_and_uniform() -> None:
    u = np.array([S.draw_uniform(7, 0, s) for s in range(20000)])
    assert S.draw_uniform(7, 0, 5) == u[5]
    assert S.draw_uniform(7, 1, 5) != u[5] and S.draw_uniform(8, 0, 5) != u[5]
    assert u.min() >= 0 and u.max() < 1
    counts = np.histogram(u, bins=20, range=(0, 1))[0]
    chi2 = ((counts - 1000) ** 2 / 1000).sum()
    assert chi2 < chi2_critical(19, Z_001)


# ----------------------------------------------------------------- kept sets

CONFIGS = [
    P(),
    P(temperature=0.7),
    P(top_k=1),
    P(top_k=5),
    P(top_k=50, top_p=0.9),
    P(top_p=0.9),
    P(top_p=0.5, temperature=1.5),
    P(top_p=0.99),
    P(min_p=0.05),
    P(min_p=0.3, temperature=0.5),
    P(top_k=40, top_p=0.8, min_p=0.02, temperature=0.9),
    P(top_k=700, top_p=0.95),
]


@pytest.mark.parametrize("params", CONFIGS, ids=repr)
@pytest.mark.parametrize("vocab", [1, 7, 300, 5000])
def test_kept_set_matches_float64_reference_and_hf(params: P, vocab: int) -> None:
    rng = np.random.default_rng(vocab)
    rows = rng.standard_normal((12, vocab)).astype(np.float32) * rng.uniform(
        0.5, 4, (12, 1)
    ).astype(np.float32)
    kept = S.kept_mask(rows, params)
    probs = S.filter_probs(rows, params)
    ambiguous = 0
    for r in range(len(rows)):
        ref_keep, ref_probs, margin = ref_filter(rows[r], params)
        if margin < 2e-6:
            ambiguous += 1
            continue
        np.testing.assert_array_equal(kept[r], ref_keep)
        np.testing.assert_allclose(probs[r], ref_probs, rtol=2e-5, atol=1e-7)
        if len(np.unique(rows[r])) == vocab:  # HF breaks ties by position: rows without ties
            np.testing.assert_array_equal(kept[r], hf_warpers(rows[r], params))
    assert ambiguous <= 2


def adversarial_rows() -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(3)
    inf = np.float32(np.inf)
    ties = np.array([3, 1, 3, 2, 3, 1, 0, 2], np.float32)
    with_inf = rng.standard_normal(200).astype(np.float32)
    with_inf[rng.choice(200, 150, replace=False)] = -inf
    huge = np.array([3e38, -3e38, 3e38, 1e38, -1e38, 0], np.float32)
    big_ties = np.repeat(rng.standard_normal(40).astype(np.float32), 30)
    rng.shuffle(big_ties)
    equal = np.full(2000, 1.5, np.float32)
    near = np.zeros(3000, np.float32)
    near[::7] = 1e-3
    # Heavy tokens off the 1/16 sample grid: the sampled top-p bracket misses, exact fallback.
    peaky = (rng.standard_normal(5000) * 0.1).astype(np.float32)
    peaky[[1, 2, 3, 17]] = [8.0, 7.5, 7.0, 6.0]
    ascending = np.linspace(-5, 5, 3000, dtype=np.float32)  # worst case for the top-k heap
    # Sums of huge values overflow to +inf and meet -inf (NaN) without any NaN logit.
    overflow = np.tile(np.array([3e38, 2e38, -np.inf, 1e38], np.float32), 64)
    return [
        ("overflow_mix", overflow),
        ("peaky", peaky),
        ("ascending", ascending),
        ("ties", ties),
        ("with_-inf", with_inf),
        ("huge", huge),
        ("big_ties", big_ties),
        ("all_equal", equal),
        ("near_ties", near),
        ("one", np.array([0.25], np.float32)),
        ("one_finite", np.array([-inf, -inf, 2.0, -inf], np.float32)),
    ]


ADV_PARAMS = [
    P(),
    P(top_k=1),
    P(top_k=2),
    P(top_k=3),
    P(top_k=10**6),
    P(top_k=-3),
    P(top_p=1e-9),
    P(top_p=0.5),
    P(top_p=0.9),
    P(temperature=1e-20),
    P(temperature=1e-3, top_p=0.9),
    P(temperature=1e30),
    P(min_p=1.0),
    P(min_p=0.5),
    P(top_k=2, top_p=0.6, min_p=0.1),
    P(temperature=0.0),
]


@pytest.mark.parametrize("params", ADV_PARAMS, ids=repr)
def test_adversarial_rows_match_reference(params: P) -> None:
    for name, row in adversarial_rows():
        keep, probs, _ = ref_filter(row, params)
        # Ties at the top-p threshold: the reference also keeps every tied value.
        got = S.kept_mask(row, params)
        np.testing.assert_array_equal(got, keep, err_msg=name)
        gp = S.filter_probs(row, params)
        np.testing.assert_allclose(gp, probs, rtol=2e-5, atol=1e-7, err_msg=name)
        draws = S.sample(np.tile(row, (64, 1)), params, seed=11, step=np.arange(64))
        assert keep[draws].all() and (probs[draws] > 0).all(), name


def test_wide_random_rows_match_reference() -> None:
    """Many shapes of rows (flat, peaky, tied, with -inf) through every top-p path."""
    rng = np.random.default_rng(123)
    ambiguous = 0
    trials = 90
    for trial in range(trials):
        vocab = int(rng.choice([700, 1500, 20000]))
        sigma = float(rng.choice([0.05, 0.3, 1, 3, 10]))
        x = (rng.standard_normal(vocab) * sigma).astype(np.float32)
        if trial % 3 == 0:
            x = np.round(x * 4) / 4  # many ties
        if trial % 5 == 0:
            x[rng.choice(vocab, vocab // 3, replace=False)] = -np.inf
        params = P(
            temperature=float(rng.choice([0.3, 1.0, 2.0])),
            top_p=float(rng.choice([0.05, 0.5, 0.9, 0.99])),
            top_k=int(rng.choice([0, 0, 100, 5000])),
            min_p=float(rng.choice([0, 0, 0.01])),
        )
        keep, _, margin = ref_filter(x, params)
        if margin < 2e-6:
            ambiguous += 1
            continue
        np.testing.assert_array_equal(S.kept_mask(x, params), keep, err_msg=f"{trial} {params}")
    assert ambiguous <= trials // 10


def fused_path_rows() -> list[tuple[str, np.ndarray]]:
    """Rows of 4096+ scores (the fused top-p pass), shaped so that its sampled
    bracket is right, or misses above or below the crossing (then the exact
    general selection runs on the stored weights)."""
    rng = np.random.default_rng(17)
    n = 12288
    gauss = (rng.standard_normal(n) * 2).astype(np.float32)
    # Heavy tokens between the sampled runs (the sample sees none of them):
    # the estimated crossing is far too low, the true one is above the bracket.
    hidden = (rng.standard_normal(n) * 0.1).astype(np.float32)
    hidden[[20, 40, 300, 600, 5000]] = [9.0, 8.5, 8.0, 7.9, 7.5]
    # Heavy tokens exactly on the first sampled run (scores 0..15): the sample
    # counts them 16 times over, so the true crossing is below the bracket.
    seen = (rng.standard_normal(n) * 0.1).astype(np.float32)
    seen[:16] = 6.0
    ties = np.round(rng.standard_normal(n) * 2).astype(np.float32)  # 13 or so values
    inf = rng.standard_normal(n).astype(np.float32)
    inf[rng.choice(n, n // 2, replace=False)] = -np.inf
    flat = np.full(n, 0.5, np.float32)
    flat[::97] = 0.5 + 1e-3
    far = (rng.standard_normal(n) * 300).astype(np.float32)  # most weights flush to 0
    ascending = np.linspace(-10, 10, n + 5, dtype=np.float32)  # not a multiple of 8 or 64
    return [
        ("gauss", gauss),
        ("hidden_heavy", hidden),
        ("sampled_heavy", seen),
        ("ties", ties),
        ("half_-inf", inf),
        ("flat", flat),
        ("far", far),
        ("ascending", ascending),
    ]


FUSED_PARAMS = [
    P(top_p=0.9),
    P(top_p=0.5),
    P(top_p=0.99),
    P(top_p=1e-6),
    P(top_p=0.9, temperature=0.05),
    P(top_p=0.7, temperature=5.0),
]


@pytest.mark.parametrize("params", FUSED_PARAMS, ids=repr)
def test_fused_top_p_path_matches_reference(params: P) -> None:
    ambiguous = 0
    rows = fused_path_rows()
    for name, row in rows:
        keep, probs, margin = ref_filter(row, params)
        if margin < 2e-6:
            ambiguous += 1
            continue
        np.testing.assert_array_equal(S.kept_mask(row, params), keep, err_msg=name)
        np.testing.assert_allclose(
            S.filter_probs(row, params), probs, rtol=2e-5, atol=1e-7, err_msg=name
        )
        draws = S.sample(np.tile(row, (32, 1)), params, seed=3, step=np.arange(32))
        assert keep[draws].all() and (probs[draws] > 0).all(), name
    assert ambiguous <= 3  # top_p = 0.99 puts 3 of the 8 rows within 2e-6 of a boundary


def test_fused_top_p_agrees_with_the_general_path() -> None:
    """The same row, once at 4096+ scores (fused pass) and once cut into the
    general path's size: the kept tokens of the shared part agree exactly when
    the extra scores carry no weight (-inf)."""
    rng = np.random.default_rng(4)
    short = (rng.standard_normal(3000) * 1.5).astype(np.float32)
    long = np.concatenate([short, np.full(5000, -np.inf, np.float32)])
    for top_p in (0.2, 0.6, 0.9, 0.999):
        params = P(top_p=top_p)
        np.testing.assert_array_equal(S.kept_mask(long, params)[:3000], S.kept_mask(short, params))
        assert not S.kept_mask(long, params)[3000:].any()


def test_ties_with_kth_are_kept_and_greedy_takes_first_max() -> None:
    row = np.array([1, 5, 3, 5, 3, 3, 0], np.float32)
    assert S.kept_mask(row, P(top_k=1)).tolist() == [0, 1, 0, 1, 0, 0, 0]
    assert S.kept_mask(row, P(top_k=3)).tolist() == [0, 1, 1, 1, 1, 1, 0]
    assert S.sample(row, P(temperature=0), seed=0) == 1
    # top-p: the smallest set by value reaching p; ties at the threshold are kept together.
    assert S.kept_mask(row, P(top_p=0.3)).tolist() == [0, 1, 0, 1, 0, 0, 0]
    assert S.kept_mask(np.zeros(5, np.float32), P(top_p=0.01)).all()


# ----------------------------------------------------------------- draws


def draw_counts(row: np.ndarray, params: P, n: int, seed: int) -> np.ndarray:
    toks = S.sample(np.broadcast_to(row, (n, len(row))), params, seed=seed, step=np.arange(n))
    return np.bincount(toks, minlength=len(row))


CHI2_CONFIGS = [
    P(),
    P(temperature=0.6),
    P(top_k=6),
    P(top_p=0.8),
    P(min_p=0.08),
    P(top_k=10, top_p=0.9, min_p=0.03, temperature=1.3),
    P(repetition_penalty=1.3, presence_penalty=0.4, frequency_penalty=0.2, top_p=0.95),
]


@pytest.mark.parametrize("params", CHI2_CONFIGS, ids=repr)
def test_draws_fit_the_truncated_distribution(params: P) -> None:
    """Chi-square goodness of fit at significance 0.001 (fixed seed: deterministic)."""
    rng = np.random.default_rng(5)
    row = (rng.standard_normal(24) * 1.5).astype(np.float32)
    hist = [1, 1, 4, 9, 9, 9] if params.repetition_penalty != 1 else []
    n = 40000
    toks = S.sample(
        np.broadcast_to(row, (n, 24)),
        params,
        seed=123,
        step=np.arange(n),
        history=[hist] * n if hist else None,
    )
    counts = np.bincount(toks, minlength=24)
    base = (
        ref_penalties(
            row, hist, params.repetition_penalty, params.presence_penalty, params.frequency_penalty
        )
        if hist
        else row
    )
    keep, probs, margin = ref_filter(base, params)
    assert margin > 1e-6
    assert counts[~keep].sum() == 0, "a draw outside the kept set"
    expected = probs[keep] * n
    chi2 = ((counts[keep] - expected) ** 2 / expected).sum()
    df = int(keep.sum()) - 1
    assert df >= 1
    assert chi2 < chi2_critical(df, Z_001), (chi2, df)


def pooled_chi2(probs: np.ndarray, counts: np.ndarray, groups: int) -> tuple[float, int]:
    """Chi-square statistic and degrees of freedom of draw counts against
    probabilities (summing to 1), tokens pooled into `groups` groups of about
    equal expected mass (so every group expects many draws)."""
    n = counts.sum()
    order = np.argsort(-probs)
    cp, cc = probs[order], counts[order]
    group = np.minimum((np.cumsum(cp) / cp.sum() * groups).astype(int), groups - 1)
    exp_g = np.bincount(group, weights=cp * n, minlength=groups)
    obs_g = np.bincount(group, weights=cc, minlength=groups)
    used = exp_g > 0
    return float(((obs_g[used] - exp_g[used]) ** 2 / exp_g[used]).sum()), int(used.sum()) - 1


@pytest.mark.parametrize("vocab", [4000, 20000])
def test_draws_with_large_vocab_fit(vocab: int) -> None:
    # Full rows (no top-k): 4000 scores take the general radix mass selection,
    # 20000 the fused top-p pass (rows of 4096 scores or more).
    rng = np.random.default_rng(9)
    row = (rng.standard_normal(vocab) * 2).astype(np.float32)
    params = P(top_p=0.7)
    n = 60000
    counts = draw_counts(row, params, n, seed=77)
    keep, probs, _ = ref_filter(row, params)
    assert counts[~keep].sum() == 0
    chi2, df = pooled_chi2(probs[keep], counts[keep], 20)
    assert df >= 9
    assert chi2 < chi2_critical(df, Z_001)


def test_top_p_rejection_draw_fits_including_its_exact_fallback() -> None:
    """Top-p alone with p >= 0.5 is drawn by rejection (see docs/sampling.md).
    This row makes rejections likely: S = the 3 heavy tokens plus the top of a
    cluster of 3000 nearly equal light ones holding half the mass, so a
    rejected draw lands in the cluster and removes only the part below it;
    about 1 draw in 180 is rejected 4 times and takes the exact fallback.
    Chi-square at significance 0.001 over kept tokens pooled by mass."""
    rng = np.random.default_rng(21)
    light = np.log(1 / 3000) + np.linspace(0, 0.05, 3000)
    row = np.concatenate([np.log([0.2, 0.15, 0.1]), light]).astype(np.float32)
    rng.shuffle(row)
    params = P(top_p=0.5)
    keep, probs, margin = ref_filter(row, params)
    assert margin > 1e-6 and 100 < keep.sum() < 3000
    n = 200000
    counts = draw_counts(row, params, n, seed=31)
    assert counts[~keep].sum() == 0, "a draw outside the top-p set"
    chi2, df = pooled_chi2(probs[keep], counts[keep], 40)
    assert chi2 < chi2_critical(df, Z_001), chi2


def test_greedy_and_tiny_temperature() -> None:
    row = np.array([0.1, 2.0, 2.0, -1.0], np.float32)
    assert (
        S.sample(np.tile(row, (10, 1)), P(temperature=0), seed=0, step=np.arange(10)) == 1
    ).all()
    toks = S.sample(np.tile(row, (200, 1)), P(temperature=1e-30), seed=0, step=np.arange(200))
    assert set(toks.tolist()) == {1, 2}  # the two tied maxima, nothing else


# ----------------------------------------------------------------- reproducibility


def test_same_key_same_token_across_threads_batches_and_positions() -> None:
    rng = np.random.default_rng(1)
    rows = rng.standard_normal((37, 3000)).astype(np.float32)
    params = [CONFIGS[i % len(CONFIGS)] for i in range(37)]
    seeds = rng.integers(0, 2**63, 37, dtype=np.uint64)
    streams = np.arange(37)
    steps = rng.integers(0, 1000, 37)
    one = S.sample(rows, params, seed=seeds, stream=streams, step=steps, threads=1)
    two = S.sample(rows, params, seed=seeds, stream=streams, step=steps, threads=2)
    np.testing.assert_array_equal(one, two)
    perm = rng.permutation(37)
    permuted = S.sample(
        rows[perm],
        [params[i] for i in perm],
        seed=seeds[perm],
        stream=streams[perm],
        step=steps[perm],
        threads=2,
    )
    np.testing.assert_array_equal(permuted, one[perm])
    for r in (0, 17, 36):
        alone = S.sample(
            rows[r], params[r], seed=int(seeds[r]), stream=int(streams[r]), step=int(steps[r])
        )
        assert alone == one[r]
    # A different step or stream changes the draws (not all equal over the batch).
    other = S.sample(rows, params, seed=seeds, stream=streams, step=steps + 1)
    assert (other != one).any()


def test_big_batch_threads_agree() -> None:
    rng = np.random.default_rng(2)
    rows = rng.standard_normal((64, 20000)).astype(np.float32)
    p = P(top_k=50, top_p=0.9)
    a = S.sample(rows, p, seed=3, step=np.arange(64), threads=1)
    b = S.sample(rows, p, seed=3, step=np.arange(64), threads=2)
    np.testing.assert_array_equal(a, b)
    ka = S.kept_mask(rows, P(top_p=0.9), threads=1)
    kb = S.kept_mask(rows, P(top_p=0.9), threads=2)
    np.testing.assert_array_equal(ka, kb)


# ----------------------------------------------------------------- penalties


def test_penalties_match_hf_and_openai_formulas() -> None:
    rng = np.random.default_rng(4)
    row = rng.standard_normal(50).astype(np.float32) * 3
    row[3] = 0.0
    hist = [3, 7, 7, 7, 12, 40, 12, -1, 49]
    for rep, pres, freq in [(1.3, 0, 0), (0.7, 0, 0), (1, 0.5, 0), (1, 0, 0.25), (1.2, -0.3, 0.6)]:
        got = S.apply_penalties(
            row,
            P(repetition_penalty=rep, presence_penalty=pres, frequency_penalty=freq),
            history=hist,
        )
        np.testing.assert_allclose(
            got, ref_penalties(row, hist, rep, pres, freq), rtol=1e-6, atol=1e-6
        )
    # HF RepetitionPenaltyLogitsProcessor: gather, where(score < 0, score * p, score / p), scatter.
    ids = np.array([h for h in hist if h >= 0])
    score = row[ids]
    hf = row.copy()
    hf[ids] = np.where(score < 0, score * np.float32(1.3), score / np.float32(1.3))
    np.testing.assert_array_equal(
        S.apply_penalties(row, P(repetition_penalty=1.3), history=hist), hf
    )
    # OpenAI: mu[j] - c[j] * alpha_frequency - float(c[j] > 0) * alpha_presence
    c = np.bincount(ids, minlength=50)
    openai = row - c * np.float32(0.25) - (c > 0) * np.float32(0.5)
    got = S.apply_penalties(row, P(presence_penalty=0.5, frequency_penalty=0.25), history=hist)
    np.testing.assert_allclose(got, openai, rtol=1e-6, atol=1e-6)


def test_penalties_feed_the_sampler() -> None:
    row = np.array([2.0, 1.9, -5.0], np.float32)
    assert S.sample(row, P(temperature=0), seed=0) == 0
    assert S.sample(row, P(temperature=0, repetition_penalty=2.0), seed=0, history=[0]) == 1
    assert S.sample(row, P(temperature=0, presence_penalty=0.2), seed=0, history=[0]) == 1
    padded = np.array([[0, -1, -1], [-1, -1, -1]])
    out = S.sample(
        np.tile(row, (2, 1)), P(temperature=0, frequency_penalty=1.0), seed=0, history=padded
    )
    assert out.tolist() == [1, 0]


# ----------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"temperature": -0.5}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"temperature": float("inf")}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": -1.0}, "top_p"),
        ({"top_p": float("nan")}, "top_p"),
        ({"min_p": 1.5}, "min_p"),
        ({"min_p": float("nan")}, "min_p"),
        ({"repetition_penalty": 0.0}, "repetition_penalty"),
        ({"repetition_penalty": float("inf")}, "repetition_penalty"),
        ({"presence_penalty": float("nan")}, "presence_penalty"),
        ({"frequency_penalty": float("-inf")}, "frequency_penalty"),
        ({"top_k": 1.5}, "top_k"),
        ({"top_k": 2**40}, "top_k"),
    ],
)
def test_bad_params_raise(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        P(**kwargs)


@pytest.mark.parametrize(
    "row, match",
    [
        ([0.0, float("nan"), 1.0], "NaN logit at index 1"),
        ([0.0, float("inf")], r"\+inf logit at index 1"),
        ([float("-inf")] * 3, "no finite logit"),
    ],
)
@pytest.mark.parametrize("params", [P(), P(temperature=0), P(top_k=1), P(top_p=0.5)], ids=repr)
def test_bad_rows_raise(row: list[float], match: str, params: P) -> None:
    x = np.array([[1.0] * len(row), row], np.float32)
    with pytest.raises(ValueError, match="row 1: " + match):
        S.sample(x, params, seed=0)
    with pytest.raises(ValueError, match=match):
        S.kept_mask(x, params)


def test_bad_call_arguments_raise() -> None:
    x = np.zeros((2, 5), np.float32)
    with pytest.raises(ValueError, match="history of row 0 holds token id 5"):
        S.sample(x, seed=0, history=[[5], []])
    with pytest.raises(ValueError, match="2 histories for 2 rows|histories"):
        S.sample(x, seed=0, history=[[1]])
    with pytest.raises(ValueError, match="seed"):
        S.sample(x, seed=-1)
    with pytest.raises(ValueError, match="seed"):
        S.sample(x, seed=[1, 2, 3])
    with pytest.raises(ValueError, match="threads"):
        S.sample(x, seed=0, threads=-1)
    with pytest.raises(ValueError, match="3 SamplingParams for 2 rows"):
        S.sample(x, [P()] * 3, seed=0)
    with pytest.raises(ValueError, match="at least one score"):
        S.sample(np.zeros((2, 0), np.float32), seed=0)
    with pytest.raises(ValueError, match="shape"):
        S.sample(np.zeros((2, 2, 2), np.float32), seed=0)
    # The core checks its raw arguments too.
    packed = np.zeros(2, S.PARAMS_DTYPE)
    packed["temperature"] = packed["repetition_penalty"] = 1.0
    with pytest.raises(ValueError, match="row 0: top_p must be > 0"):
        _core.sample_batch(x, packed, 0, 0, 0)
    with pytest.raises(ValueError, match=r"params must have shape \(1,\)"):
        _core.sample_batch(x, np.zeros(3, S.PARAMS_DTYPE), 0, 0, 0)


def test_import_does_not_pull_torch() -> None:
    code = (
        "import sys, aigc_engine.sampling as s; s.cuda_status(); assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_cuda_status_reports_a_reason() -> None:
    ok, reason = S.cuda_status()
    assert isinstance(ok, bool) and isinstance(reason, str) and reason


# ----------------------------------------------------------------- packed parameters


def test_packed_layout_is_the_core_struct_in_field_order() -> None:
    import dataclasses

    assert S.PARAMS_DTYPE.names == tuple(f.name for f in dataclasses.fields(P))
    assert S.PARAMS_DTYPE.itemsize == 28
    assert S.PARAMS_DTYPE["top_k"] == np.int32 and S.PARAMS_DTYPE["top_p"] == np.float32
    packed = S.RowParams([P(temperature=0.5, top_k=7, top_p=0.25, min_p=0.125)]).packed
    assert packed.dtype == S.PARAMS_DTYPE and packed.shape == (1,)
    assert packed[0].tolist() == (0.5, 7, 0.25, 0.125, 1.0, 0.0, 0.0)


def test_one_params_entry_for_every_row_equals_one_per_row() -> None:
    rng = np.random.default_rng(8)
    x = rng.standard_normal((9, 500)).astype(np.float32)
    p = P(top_k=40, top_p=0.8, temperature=0.9)
    one = np.zeros(1, S.PARAMS_DTYPE)
    one[0] = (0.9, 40, 0.8, 0.0, 1.0, 0.0, 0.0)
    steps = np.arange(9, dtype=np.uint64)
    broadcast = _core.sample_batch(x, one, 3, 0, steps)
    per_row = _core.sample_batch(x, np.repeat(one, 9), 3, 0, steps)
    np.testing.assert_array_equal(broadcast, per_row)
    np.testing.assert_array_equal(per_row, S.sample(x, [p] * 9, seed=3, step=steps))
    np.testing.assert_array_equal(per_row, S.sample(x, p, seed=3, step=steps))
    with pytest.raises(ValueError, match=r"params must have shape \(1,\) .* \(9,\)"):
        _core.sample_batch(x, np.repeat(one, 2), 3, 0, steps)


def test_caching_the_packed_params_leaves_the_dataclass_as_it_was() -> None:
    p = P(top_k=5, top_p=0.7)
    before = (hash(p), repr(p))
    S.sample(np.zeros(10, np.float32), p, seed=0)
    S.sample(np.zeros((3, 10), np.float32), p, seed=0)
    assert (hash(p), repr(p)) == before and p == P(top_k=5, top_p=0.7)


def test_keys_as_ints_arrays_and_scalars_agree_and_bad_keys_are_named() -> None:
    rng = np.random.default_rng(6)
    x = rng.standard_normal((4, 300)).astype(np.float32)
    ref = S.sample(x, seed=np.full(4, 5, np.uint64), stream=np.arange(4, dtype=np.uint64),
                   step=np.full(4, 2, np.uint64))
    for seed in (5, np.int64(5), np.uint64(5), np.array(5), [5, 5, 5, 5], np.full(4, 5, np.int32)):
        got = S.sample(x, seed=seed, stream=[0, 1, 2, 3], step=np.int16(2))
        np.testing.assert_array_equal(got, ref)
    big = S.sample(x, seed=2**64 - 1, stream=np.full(4, 2**64 - 1, np.uint64), step=0)
    assert big.shape == (4,)
    with pytest.raises(ValueError, match=r"step values must be in \[0, 2\*\*64\), got -1\.\.3"):
        S.sample(x, seed=0, step=np.array([0, -1, 3, 2]))
    with pytest.raises(ValueError, match=r"seed must be in \[0, 2\*\*64\), got 18446744073709551616"):
        S.sample(x, seed=2**64)
    with pytest.raises(ValueError, match="stream must be an int in .* got True"):
        S.sample(x, seed=0, stream=True)
    with pytest.raises(ValueError, match=r"seed must be an int in .* got \[0\.5\]"):
        S.sample(x, seed=[0.5])
    with pytest.raises(ValueError, match=r"stream must be an int or have shape \(4,\), got shape"):
        S.sample(x, seed=0, stream=np.zeros((2, 2), np.uint64))
    from aigc_engine.errors import ConfigError

    with pytest.raises(ConfigError):
        S.sample(x, seed=-3)
