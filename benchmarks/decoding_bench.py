"""Benchmark: the engine's decoding loop (aigc_engine.decoding).

1. n-gram generation, tokens per second, through the loop (C++ chunks) against
   the previous commit's generation path in the same run: one C++
   ``NgramModel.generate`` call for the whole continuation, then each id
   looked up with ``lm.word`` and joined (the code of
   ``NgramGenerator._continuation``/``_pieces`` before the loop; it streams
   nothing until the whole text exists). Same model, seeds and options.
   Target: loop >= 0.9x.
2. The loop's own cost per token with a trivial 65-token model whose step
   returns a precomputed row (no model work), at n=1 and n=8.
3. Per-step cost after a 10,000-token completion with a repetition penalty,
   against the same steps without penalty. Target: <= 1.2x.
4. ``aigc generate`` on a terminal-like pipe: time to the first output line
   with --max-tokens 100000000, and the delay from Ctrl-C (SIGINT) to exit.

    python benchmarks/decoding_bench.py [--corpus ts_train.txt] [--order 5] [--rounds 5]

Single-threaded (the sampler runs one thread per call here); figures are
medians over rounds, contenders interleaved. Prints the machine's load.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def previous_path(lm: Any, prompt: str, max_tokens: int, seed: int, top_k: int) -> str:
    """The previous commit's n-gram generation: one C++ call, then the words joined."""
    ids = lm.generate(lm.tokenize(prompt), max_tokens, top_k=top_k, seed=seed, stream=0,
                      stop_at_eos=False)
    pieces = [prompt]
    at_line_start = not prompt
    for word in [lm.word(int(i)) for i in ids]:
        if word == "</s>":
            at_line_start = True
            pieces.append("\n")
        else:
            pieces.append(word if at_line_start else " " + word)
            at_line_start = False
    return "".join(pieces)


def ngram_throughput(gen: Any, rounds: int, tokens: int) -> None:
    lm = gen.lm
    prompt = "the king"
    print(f"\n1. n-gram generation, {tokens} tokens, top-k 40 (and full distribution), n=1")
    for top_k in (40, 0):
        loop_t, prev_t = [], []
        for r in range(rounds):
            t0 = time.perf_counter()
            res = gen.generate(prompt, max_tokens=tokens, top_k=top_k, seed=r,
                               stop_at_eos=False)
            loop_t.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            text = previous_path(lm, prompt, tokens, r, top_k)
            prev_t.append(time.perf_counter() - t0)
            assert text == prompt + res.text, "the two paths must give the same text"
        lt, pt = statistics.median(loop_t), statistics.median(prev_t)
        print(f"   top_k={top_k:<3} loop {tokens / lt:>10,.0f} tok/s   "
              f"previous {tokens / pt:>10,.0f} tok/s   ratio loop/previous {pt / lt:.3f}")


class Trivial:
    """A 65-token model whose rows are precomputed: measures the loop alone."""

    def __init__(self) -> None:
        from aigc_engine.tokenizers import CharTokenizer

        self.tok = CharTokenizer([chr(48 + i) for i in range(64)])
        rng = np.random.default_rng(0)
        self.rows = (rng.standard_normal((64, 65)) * 2).astype(np.float32)
        self.times: list[float] = []

    @property
    def tokenizer(self) -> Any:
        return self.tok

    samples_ahead = False

    def prefill(self, prompts: Sequence[Sequence[int]]) -> tuple[Any, Any]:
        return self.rows[: len(prompts)].copy(), len(prompts)

    def step(self, tokens: np.ndarray, state: Any) -> tuple[Any, Any]:
        self.times.append(time.perf_counter())
        return self.rows[: len(tokens)].copy(), len(tokens)

    def select(self, state: Any, rows: np.ndarray) -> Any:
        return len(rows)

    def concat(self, states: Any) -> Any:
        return sum(states)


def loop_cost(rounds: int) -> None:
    from aigc_engine import TextRequest
    from aigc_engine.decoding import TokenModel, decode

    print("\n2. the loop's own cost per token (trivial 65-token model)")
    for n in (1, 8):
        per = []
        for r in range(rounds):
            model = Trivial()
            req = TextRequest.build(seed=r, n=n, max_tokens=4000, stop_at_eos=False, top_k=20)
            t0 = time.perf_counter()
            decode(model, req)  # type: ignore[arg-type]
            per.append((time.perf_counter() - t0) / (4000 * n))
        print(f"   n={n}: {statistics.median(per) * 1e6:7.2f} us per token "
              f"({statistics.median(per) * n * 1e6:7.2f} us per step)")
    assert TokenModel  # the protocol the trivial model follows


def penalty_cost(rounds: int) -> None:
    from aigc_engine import TextRequest
    from aigc_engine.decoding import decode

    print("\n3. per-step cost after 10,000 tokens, repetition penalty 1.3 vs none (n=1),"
          " contenders alternated")
    costs: dict[str, list[float]] = {"penalty": [], "none": []}
    for r in range(2 * rounds):
        for label, rep in ((("penalty", 1.3), ("none", 1.0)) if r % 2 == 0
                           else (("none", 1.0), ("penalty", 1.3))):
            model = Trivial()
            req = TextRequest.build(seed=r, max_tokens=12000, stop_at_eos=False,
                                    repetition_penalty=rep)
            decode(model, req)  # type: ignore[arg-type]
            steps = np.diff(np.array(model.times[10000:12000]))
            costs[label].append(float(np.median(steps)))
    p, n = statistics.median(costs["penalty"]), statistics.median(costs["none"])
    print(f"   median step {p * 1e6:.2f} us with the penalty, {n * 1e6:.2f} us without: "
          f"{p / n:.3f}x (target <= 1.2x); {2 * rounds} runs each")


def cli_latency(bundle: Path, rounds: int) -> None:
    print("\n4. aigc generate --max-tokens 100000000 --no-stop-at-eos: first line and Ctrl-C")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIGC_")}
    env["AIGC_PLUGINS"] = "ngram,datasets"
    firsts, delays = [], []
    for r in range(rounds):
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "aigc_engine", "generate", str(bundle),
                                 "--max-tokens", "100000000", "--no-stop-at-eos", "--top-k", "40",
                                 "--seed", str(r)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env)
        assert proc.stdout is not None
        proc.stdout.readline()
        firsts.append(time.perf_counter() - t0)
        time.sleep(0.5)
        t1 = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
        delays.append(time.perf_counter() - t1)
        assert proc.returncode == 130, proc.returncode
    print(f"   first line after {statistics.median(firsts) * 1000:.0f} ms (median; includes "
          f"interpreter start and model load), exit {statistics.median(delays) * 1000:.0f} ms "
          f"after SIGINT (median, max {max(delays) * 1000:.0f} ms)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", default="ts_train.txt")
    ap.add_argument("--order", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tokens", type=int, default=50000)
    args = ap.parse_args()
    from aigc_engine.plugins.ngram.generator import NgramGenerator

    print(f"load average {os.getloadavg()}, {os.cpu_count()} cores; one sampler thread")
    gen = NgramGenerator(order=args.order)
    gen.fit(str(DATA / args.corpus))
    print(f"model: order {args.order} on {args.corpus} ({gen.lm.vocab_size} words)")
    ngram_throughput(gen, args.rounds, args.tokens)
    loop_cost(args.rounds)
    penalty_cost(args.rounds)
    with tempfile.TemporaryDirectory() as tmp:
        cli_latency(gen.save(Path(tmp) / "lm"), args.rounds)


if __name__ == "__main__":
    main()
