"""Benchmark: order-5 Kneser-Ney estimation against KenLM lmplz, with and without a memory budget.

Every contender runs in a fresh process (its peak RSS is its own: os.wait4's
ru_maxrss) and writes the ARPA file, as lmplz does; contenders are
interleaved, round after round, so a change in the machine's load hits all.

    python benchmarks/ngram_estimate.py [--lmplz PATH] [--memory 100M] [--repeat 2]
                                        [--big] [--work DIR]

- gutenberg.txt (8 M words): aigc in memory, aigc with --memory (lmplz -S),
  and, with --lmplz, `lmplz -S MEMORY` and `lmplz -S 1G`; plus aigc's
  estimation to a model in memory (no ARPA), the figure the README quoted.
  Without --lmplz the lmplz figures are the README's (NOT measured here).
- --big: a corpus of 4 copies of gutenberg.txt, copy i > 0 with every word
  renamed by a deterministic permutation of the vocabulary (random.Random(i)),
  so each copy's n-grams are new n-grams with the statistics of real text,
  not repeats of the first copy's. aigc runs in memory, then with a budget of
  25% of that run's peak RSS, and lmplz with -S the same budget.
The bounded ARPA is compared byte for byte with the in-memory one.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
README_LMPLZ = {"-S 1G": (24.0, 510.0), "-S 100M": (19.0, 151.0)}  # s, MB (issue 15, README)

CHILD = r"""
import json, sys, time
from aigc_engine._core import NgramModel
corpus, arpa, order, memory, temp = sys.argv[1:6]
t0 = time.perf_counter()
if arpa == "-":
    m = NgramModel.estimate(corpus, int(order))
    info = m.estimate_stats
else:
    info = NgramModel.estimate_arpa(corpus, arpa, int(order), memory=memory or None,
                                    temp_dir=temp)
print(json.dumps({"seconds": time.perf_counter() - t0, "info": info}))
"""


def measure(cmd: list[str], stdin: Path | None = None) -> dict[str, Any]:
    """Wall seconds, CPU seconds and peak RSS (MB) of one child process (os.wait4)."""
    t0 = time.perf_counter()
    with open(stdin, "rb") if stdin else open(os.devnull, "rb") as fin, \
            tempfile.TemporaryFile() as fout, tempfile.TemporaryFile() as ferr:
        proc = subprocess.Popen(cmd, stdin=fin, stdout=fout, stderr=ferr)
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        fout.seek(0)
        ferr.seek(0)
        out, err = fout.read().decode(), ferr.read().decode()
    if status != 0:
        sys.exit(f"{cmd[0]} failed ({status}): {err[-2000:]}")
    return {"wall": wall, "cpu": ru.ru_utime + ru.ru_stime, "peak_mb": ru.ru_maxrss / 1024,
            "out": out}


def aigc(corpus: Path, arpa: str, order: int, memory: str, temp: Path) -> list[str]:
    return [sys.executable, "-c", CHILD, str(corpus), arpa, str(order), memory, str(temp)]


def lmplz(path: str, order: int, memory: str, temp: Path, arpa: Path) -> list[str]:
    return [path, "-o", str(order), "-S", memory, "-T", str(temp), "--arpa", str(arpa)]


def table(results: dict[str, list[dict[str, Any]]]) -> None:
    print(f"  {'contender':34} {'wall s (runs)':>28} {'CPU s':>7} {'peak MB':>8}")
    for name, runs in results.items():
        walls = " ".join(f"{r['wall']:.1f}" for r in runs)
        best = min(runs, key=lambda r: r["wall"])
        print(f"  {name:34} {walls:>28} {best['cpu']:7.1f} {max(r['peak_mb'] for r in runs):8.0f}")


def best(results: dict[str, list[dict[str, Any]]], name: str) -> dict[str, Any]:
    return min(results[name], key=lambda r: r["wall"])


def ratios(results: dict[str, list[dict[str, Any]]], ours: str, theirs: str, time_target: float,
           mem_target: float | None) -> None:
    a, b = best(results, ours), best(results, theirs)
    line = (f"  {ours} / {theirs}: time {a['wall'] / b['wall']:.2f} (best runs; target <= "
            f"{time_target})")
    if mem_target is not None:
        line += f", peak memory {a['peak_mb'] / b['peak_mb']:.2f} (target <= {mem_target})"
    print(line)


def make_big(src: Path, dst: Path, copies: int = 4) -> None:
    """`copies` copies of src; copy i > 0 with words renamed by a seeded vocabulary permutation."""
    if dst.is_file():
        return
    text = src.read_text(encoding="utf-8")
    vocab = sorted({w for line in text.splitlines() for w in line.split(" ") if w})
    tmp = dst.with_suffix(".part")
    with open(tmp, "w", encoding="utf-8") as out:
        out.write(text)
        for i in range(1, copies):
            perm = vocab[:]
            random.Random(i).shuffle(perm)
            rename = dict(zip(vocab, perm, strict=True))
            rename[""] = ""
            for line in text.splitlines():
                out.write(" ".join(rename[w] for w in line.split(" ")))
                out.write("\n")
    tmp.rename(dst)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--order", type=int, default=5)
    ap.add_argument("--memory", default="100M", help="the budget (aigc memory=, lmplz -S)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--corpus", type=Path, default=DATA / "gutenberg.txt")
    ap.add_argument("--lmplz", default=None, help="path of a built KenLM lmplz")
    ap.add_argument("--big", action="store_true", help="also the 4x corpus (several minutes)")
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp dir)")
    args = ap.parse_args()
    if not args.corpus.is_file():
        sys.exit(f"corpus not found: {args.corpus}")
    work_ctx = tempfile.TemporaryDirectory(prefix="aigc-bench-") if args.work is None else None
    work = Path(work_ctx.name) if work_ctx else args.work
    work.mkdir(parents=True, exist_ok=True)
    spill = work / "spill"
    spill.mkdir(exist_ok=True)
    print(f"load average {os.getloadavg()} on {os.cpu_count()} CPUs (shared machine: wall "
          "times grow with the load; contenders are interleaved)")
    order, mem = args.order, args.memory
    contenders: dict[str, tuple[list[str], Path | None]] = {
        "aigc in memory -> ARPA": (aigc(args.corpus, str(work / "mem.arpa"), order, "", spill),
                                   None),
        f"aigc memory={mem} -> ARPA": (aigc(args.corpus, str(work / "bounded.arpa"), order, mem,
                                            spill), None),
        "aigc in memory -> model (no ARPA)": (aigc(args.corpus, "-", order, "", spill), None),
    }
    if args.lmplz:
        contenders[f"lmplz -S {mem}"] = (lmplz(args.lmplz, order, mem, spill, work / "l.arpa"),
                                         args.corpus)
        contenders["lmplz -S 1G"] = (lmplz(args.lmplz, order, "1G", spill, work / "l.arpa"),
                                     args.corpus)
    results: dict[str, list[dict[str, Any]]] = {k: [] for k in contenders}
    for _ in range(args.repeat):
        for name, (cmd, stdin) in contenders.items():
            results[name].append(measure(cmd, stdin))
    same = filecmp.cmp(work / "mem.arpa", work / "bounded.arpa", shallow=False)
    info = json.loads(results[f"aigc memory={mem} -> ARPA"][0]["out"].strip().splitlines()[-1])
    print(f"\n{args.corpus.name}, order {order}; bounded ARPA identical to in-memory: {same}; "
          f"spill: {info['info']['spill_runs']} runs, {info['info']['spill_bytes'] / 2**20:.0f} MB")
    table(results)
    if args.lmplz:
        ratios(results, f"aigc memory={mem} -> ARPA", f"lmplz -S {mem}", 0.5, 1.0)
        ratios(results, "aigc in memory -> ARPA", "lmplz -S 1G", 0.3, None)
        ratios(results, "aigc in memory -> ARPA", f"lmplz -S {mem}", 0.3, None)
    else:
        for key, (s, mb) in README_LMPLZ.items():
            print(f"  lmplz {key} (README/issue figure, NOT measured here): {s:.0f} s, {mb:.0f} MB")
    for f in ("mem.arpa", "bounded.arpa", "l.arpa"):
        (work / f).unlink(missing_ok=True)

    if args.big:
        big = work / "gutenberg_x4.txt"
        t0 = time.perf_counter()
        make_big(args.corpus, big)
        print(f"\n4x corpus: {big} ({big.stat().st_size / 2**20:.0f} MB; copies 2-4 renamed by "
              f"vocabulary permutations; made in {time.perf_counter() - t0:.0f} s)")
        big_results: dict[str, list[dict[str, Any]]] = {}
        big_results["aigc in memory -> ARPA"] = [
            measure(aigc(big, str(work / "mem.arpa"), order, "", spill))]
        peak = big_results["aigc in memory -> ARPA"][0]["peak_mb"]
        budget = f"{int(peak * 0.25)}M"
        name = f"aigc memory={budget} (25%) -> ARPA"
        big_results[name] = [measure(aigc(big, str(work / "bounded.arpa"), order, budget, spill))]
        if args.lmplz:
            big_results[f"lmplz -S {budget}"] = [
                measure(lmplz(args.lmplz, order, budget, spill, work / "l.arpa"), big)]
        same = filecmp.cmp(work / "mem.arpa", work / "bounded.arpa", shallow=False)
        print(f"order {order}; bounded ARPA identical to in-memory: {same}")
        table(big_results)
        print(f"  budget / in-memory peak: {int(peak * 0.25) / peak:.2f}; bounded peak / budget: "
              f"{big_results[name][0]['peak_mb'] / int(peak * 0.25):.2f}")
        if args.lmplz:
            ratios(big_results, name, f"lmplz -S {budget}", 0.5, 1.0)
        for f in ("mem.arpa", "bounded.arpa", "l.arpa"):
            (work / f).unlink(missing_ok=True)
    if work_ctx:
        work_ctx.cleanup()


if __name__ == "__main__":
    main()
