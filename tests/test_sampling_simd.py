"""The sampler's CPU kernels give the same bits for every instruction set.

The kernels are compiled once per instruction set (SSE2, AVX2, AVX-512 on
x86-64; csrc/sampling/simd_levels.cpp) and the best one the CPU runs is chosen
per process; ``AIGC_SAMPLING_SIMD`` picks another one that runs here. Each
level samples and filters the same rows in a process of its own, through
every path of the sampler (greedy, top-k, the general and fused top-p
selections, the rejection draw and its fallback, min-p, penalties; ties,
``-inf``, huge and peaky rows, lengths off the vector width); tokens and
probabilities must be equal bit for bit. A level this CPU cannot run is
skipped, saying so.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from aigc_engine import _core

CHILD = r"""
import sys
import numpy as np
from aigc_engine import _core
from aigc_engine import sampling as S

P = S.SamplingParams
rng = np.random.default_rng(2024)


def gauss(n, sigma):
    return (rng.standard_normal(n) * sigma).astype(np.float32)


rows = {
    "v50257": gauss(50257, 2.0),
    "v12288_sharp": gauss(12288, 6.0),
    "v5000": gauss(5000, 1.0),
    "v300": gauss(300, 3.0),
    "v7": gauss(7, 1.0),
    "v1": np.array([0.25], np.float32),
    "ascending": np.linspace(-10, 10, 3005, dtype=np.float32),
    "all_equal": np.full(2000, 1.5, np.float32),
    "huge": np.array([3e38, -3e38, 3e38, 1e38, -1e38, 0], np.float32),
}
ties = np.round(gauss(9000, 2.0))
rows["ties"] = ties
with_inf = gauss(6000, 2.0)
with_inf[rng.choice(6000, 4000, replace=False)] = -np.inf
rows["with_-inf"] = with_inf
hidden = gauss(12288, 0.1)
hidden[[20, 40, 300, 600, 5000]] = [9.0, 8.5, 8.0, 7.9, 7.5]  # off the sampled runs
rows["hidden_heavy"] = hidden
seen = gauss(12288, 0.1)
seen[:16] = 6.0  # on the first sampled run
rows["sampled_heavy"] = seen
light = np.log(1 / 3000) + np.linspace(0, 0.05, 3000)
rejects = np.concatenate([np.log([0.2, 0.15, 0.1]), light]).astype(np.float32)
rng.shuffle(rejects)  # top-p 0.5 is often rejected 4 times: the exact fallback
rows["rejections"] = rejects

configs = [
    P(),
    P(temperature=0.0),
    P(temperature=0.7),
    P(temperature=1e-30),
    P(top_k=1),
    P(top_k=50),
    P(top_k=700, top_p=0.95),
    P(top_k=50, top_p=0.9),
    P(top_p=0.9),
    P(top_p=0.5),
    P(top_p=0.3),
    P(top_p=0.99, temperature=1.5),
    P(top_p=1e-6),
    P(min_p=0.05),
    P(top_k=40, top_p=0.8, min_p=0.02, temperature=0.9),
    P(top_p=0.9, repetition_penalty=1.3, presence_penalty=0.3, frequency_penalty=0.2),
]
out = {}
draws = 48
for name, x in rows.items():
    v = len(x)
    hist = [[int(t) for t in rng.integers(-1, v, 12)] for _ in range(draws)]
    for i, p in enumerate(configs):
        h = hist if p.repetition_penalty != 1 else None
        batch = np.tile(x, (draws, 1))
        toks = S.sample(batch, p, seed=99, stream=np.arange(draws), step=7, history=h)
        out[f"{name}/{i}/tokens"] = toks
        probs = S.filter_probs(x, p, history=h[0] if h else None)
        out[f"{name}/{i}/probs"] = probs.view(np.uint32)
np.savez(sys.argv[1], level=np.array(_core.sampling_simd()), **out)
"""


def run_level(level: str, tmp_path: Path) -> dict[str, np.ndarray]:
    path = tmp_path / f"{level}.npz"
    env = dict(os.environ, AIGC_SAMPLING_SIMD=level)
    subprocess.run([sys.executable, "-c", CHILD, str(path)], check=True, env=env)
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


LEVELS = dict(_core.sampling_simd_levels())
BASELINE = list(LEVELS)[-1]  # sse2 on x86-64, else generic: runs everywhere


def test_levels_are_listed_and_the_best_supported_one_is_used() -> None:
    assert LEVELS[BASELINE] is True
    best = next(name for name, ok in LEVELS.items() if ok)
    assert _core.sampling_simd() in LEVELS
    if "AIGC_SAMPLING_SIMD" not in os.environ:
        assert _core.sampling_simd() == best


@pytest.mark.parametrize("level", ["avx2", "avx512"])
def test_level_gives_the_same_bits_as_the_baseline(level: str, tmp_path: Path) -> None:
    if level not in LEVELS:
        pytest.skip(f"the sampler is not built for {level} here (levels: {list(LEVELS)})")
    if not LEVELS[level]:
        pytest.skip(f"this CPU cannot run the {level} kernels")
    base = run_level(BASELINE, tmp_path)
    got = run_level(level, tmp_path)
    assert str(base.pop("level")) == BASELINE
    assert str(got.pop("level")) == level
    assert base.keys() == got.keys() and len(base) > 400
    differ = [k for k in base if not np.array_equal(base[k], got[k])]
    assert not differ, f"{level} differs from {BASELINE} in {len(differ)} outputs: {differ[:5]}"


def test_unsupported_request_falls_back_to_the_best_level(tmp_path: Path) -> None:
    code = "from aigc_engine import _core; print(_core.sampling_simd())"
    env = dict(os.environ, AIGC_SAMPLING_SIMD="no-such-level")
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, env=env, capture_output=True, text=True
    )
    best = next(name for name, ok in LEVELS.items() if ok)
    assert out.stdout.strip() == best
