"""Speed of the shared sampler against a Hugging Face-style torch chain and the read floor.

One run compares, on the same float32 logits (Gaussian, sigma given by --sigma):

* floor: numpy ``max`` over the batch (reading the logits once),
* aigc: the C++ sampler through ``_core.sample_batch`` on 1 thread (the kernel
  plus the pybind11 call), and ``aigc_engine.sampling.sample`` (the public
  numpy face, with its argument handling) for top-k 50 + top-p 0.9,
* hf: the HF-style chain in torch on 1 thread (``torch.set_num_threads(1)``):
  temperature, top-k by ``torch.topk``, top-p by a full ``torch.sort`` +
  softmax + cumsum, softmax, ``torch.multinomial``,

for V in {65, 32000, 50257, 128256} and batch in {1, 8, 64}, and batch 64 on
2 threads against 1. Times are the median of several repeats (microseconds
per call). Run: ``python benchmarks/sampling_bench.py`` (about two minutes).
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from aigc_engine import _core
from aigc_engine import sampling as S

CLOCK = time.perf_counter


def timeit(fn: Callable[[], object], budget: float = 0.04, repeats: int = 7) -> float:
    fn()
    t = CLOCK()
    fn()
    one = max(CLOCK() - t, 1e-7)
    reps = max(1, min(2000, int(budget / one)))
    samples = []
    for _ in range(repeats):
        t = CLOCK()
        for _ in range(reps):
            fn()
        samples.append((CLOCK() - t) / reps)
    return statistics.median(samples) * 1e6


def wall_timeit(fn: Callable[[], object]) -> float:
    global CLOCK
    saved, CLOCK = CLOCK, time.perf_counter
    try:
        return timeit(fn)
    finally:
        CLOCK = saved


def core_call(x: np.ndarray, top_k: int, top_p: float, threads: int) -> Callable[[], object]:
    b = x.shape[0]
    params = np.zeros(b, S.PARAMS_DTYPE)
    params["temperature"] = 1.0
    params["top_k"] = top_k
    params["top_p"] = top_p
    params["repetition_penalty"] = 1.0
    seeds = np.full(b, 7, np.uint64)
    streams = np.arange(b, dtype=np.uint64)
    steps = np.zeros(b, np.uint64)
    out = np.empty(b, np.int32)
    return lambda: _core.sample_batch(x, params, seeds, streams, steps, threads=threads, out=out)


def hf_chain(
    x: torch.Tensor, top_k: int, top_p: float, gen: torch.Generator
) -> Callable[[], object]:
    def run() -> torch.Tensor:
        s = x / 1.0  # TemperatureLogitsWarper
        if top_k > 0:  # TopKLogitsWarper
            kth = torch.topk(s, min(top_k, s.shape[-1]))[0][..., -1, None]
            s = s.masked_fill(s < kth, -float("inf"))
        if top_p < 1.0:  # TopPLogitsWarper
            sorted_logits, sorted_idx = torch.sort(s, descending=False)
            cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
            remove = cum <= (1 - top_p)
            remove[..., -1:] = False
            s = s.masked_fill(remove.scatter(1, sorted_idx, remove), -float("inf"))
        probs = torch.softmax(s, dim=-1)
        return torch.multinomial(probs, 1, generator=gen)

    return run


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sigma", type=float, default=2.0, help="std of the Gaussian logits")
    ap.add_argument("--vocab", type=int, nargs="*", default=[65, 32000, 50257, 128256])
    ap.add_argument("--batch", type=int, nargs="*", default=[1, 8, 64])
    ap.add_argument(
        "--cpu-time",
        action="store_true",
        help="time the 1-thread table by process CPU time (steadier on a shared, loaded machine);"
        " the 1-vs-2-thread comparison always uses wall time",
    )
    args = ap.parse_args()
    global CLOCK
    if args.cpu_time:
        CLOCK = time.process_time
    torch.set_num_threads(1)
    print(
        f"load average before: {os.getloadavg()} on {os.cpu_count()} CPUs (shared machines: noisy)"
    )
    gen = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    clock = "process CPU time" if args.cpu_time else "wall time"
    print(
        f"logits ~ N(0, {args.sigma}^2), float32; {clock} in us per call (median);"
        " torch threads = 1"
    )
    head = (
        f"{'V':>7} {'B':>3} | {'floor':>8} | {'k50+p.9':>8} {'/floor':>6} {'hf':>9}"
        f" {'hf/us':>6} {'api':>8} | {'p.9':>8} {'/floor':>6} {'hf':>9} {'hf/us':>6}"
        f" | {'plain':>8} {'/floor':>6}"
    )
    print(head)
    print("-" * len(head))
    rows = []
    for v in args.vocab:
        for b in args.batch:
            x = (rng.standard_normal((b, v)) * args.sigma).astype(np.float32)
            xt = torch.from_numpy(x)
            floor = timeit(functools.partial(np.max, x, axis=1))
            kp = timeit(core_call(x, 50, 0.9, 1))
            kp_hf = timeit(hf_chain(xt, 50, 0.9, gen))
            params = S.SamplingParams(top_k=50, top_p=0.9)
            steps = np.arange(b)
            api = timeit(functools.partial(S.sample, x, params, seed=7, step=steps, threads=1))
            p = timeit(core_call(x, 0, 0.9, 1))
            p_hf = timeit(hf_chain(xt, 0, 0.9, gen))
            plain = timeit(core_call(x, 0, 1.0, 1))
            rows.append((v, b, floor, kp, kp_hf, p, p_hf))
            print(
                f"{v:>7} {b:>3} | {floor:8.1f} | {kp:8.1f} {kp / floor:6.1f} {kp_hf:9.1f}"
                f" {kp_hf / kp:6.1f} {api:8.1f} | {p:8.1f} {p / floor:6.1f} {p_hf:9.1f}"
                f" {p_hf / p:6.1f} | {plain:8.1f} {plain / floor:6.1f}",
                flush=True,
            )
    print()
    print("batch 64, top-k 50 + top-p 0.9 / top-p 0.9: 1 thread vs 2 threads (us per call)")
    speedups = []
    for v in args.vocab:
        if v < 1000:
            continue
        x = (rng.standard_normal((64, v)) * args.sigma).astype(np.float32)
        for name, k, p in (("k50+p.9", 50, 0.9), ("p.9", 0, 0.9)):
            one = wall_timeit(core_call(x, k, p, 1))
            two = wall_timeit(core_call(x, k, p, 2))
            speedups.append((v, name, one / two))
            print(
                f"  V={v:>6} {name:>8}: 1 thread {one:9.1f}  2 threads {two:9.1f}"
                f"  speed-up {one / two:4.2f}x"
            )
    print()
    print("targets at V = 50257 (k50+p.9 <= 5x floor, >= 20x faster than hf; p.9 <= 10x floor):")
    for v, b, floor, kp, kp_hf, p, _ in rows:
        if v != 50257:
            continue
        verdict = [
            "ok" if c else "MISSED" for c in (kp / floor <= 5, kp_hf / kp >= 20, p / floor <= 10)
        ]
        print(
            f"  B={b:>2}: k50+p.9 {kp / floor:4.1f}x floor [{verdict[0]}],"
            f" {kp_hf / kp:5.1f}x faster than hf [{verdict[1]}];"
            f" p.9 {p / floor:4.1f}x floor [{verdict[2]}]"
        )
    for v, name, sp in speedups:
        print(f"  2 threads, B=64, V={v}, {name}: {sp:4.2f}x [{'ok' if sp >= 1.6 else 'MISSED'}]")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
