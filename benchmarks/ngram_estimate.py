"""Benchmark: order-5 modified Kneser-Ney estimation on gutenberg.txt (8 M words).

Runs the estimation in a fresh interpreter (so the peak RSS is the
estimation's, not this script's) and compares with KenLM lmplz's figures on
this machine as recorded in ../shared/data/README.md (about 24 s and 510 MB
with -S 1G). lmplz is not installed here: its figures are NOT measured in
this run, they are the README's.

    python benchmarks/ngram_estimate.py [--order 5] [--threads 0] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
LMPLZ = {5: (24.0, 510.0), 3: (10.0, 260.0)}  # seconds, MB (README, -S 1G)

CHILD = r"""
import json, resource, sys, time
from aigc_engine._core import NgramModel
path, order, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
t0 = time.perf_counter()
m = NgramModel.estimate(path, order, threads=threads)
dt = time.perf_counter() - t0
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": dt, "counts": m.counts, "cpu_seconds": ru.ru_utime + ru.ru_stime,
                  "peak_rss_mb": ru.ru_maxrss / 1024}))
"""

BASELINE = r"""
import json, resource
import aigc_engine._core
print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--order", type=int, default=5, choices=sorted(LMPLZ))
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--corpus", type=Path, default=DATA / "gutenberg.txt")
    args = ap.parse_args()
    if not args.corpus.is_file():
        sys.exit(f"corpus not found: {args.corpus}")
    baseline = subprocess.run([sys.executable, "-c", BASELINE], check=True,
                              capture_output=True, text=True)
    base = json.loads(baseline.stdout.strip().splitlines()[-1])
    import os

    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs "
          "(the machine is shared; wall times grow with the load)")
    runs = []
    for _ in range(args.repeat):
        out = subprocess.run([sys.executable, "-c", CHILD, str(args.corpus), str(args.order),
                              str(args.threads)], check=True, capture_output=True, text=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    best = min(runs, key=lambda r: r["seconds"])
    lm_s, lm_mb = LMPLZ[args.order]
    print(f"corpus: {args.corpus} order {args.order} threads {args.threads or 'all'}")
    print(f"n-grams per order: {best['counts']}")
    for i, r in enumerate(runs):
        print(f"run {i + 1}: {r['seconds']:.2f} s wall, {r['cpu_seconds']:.2f} s CPU "
              f"(process total), peak RSS {r['peak_rss_mb']:.0f} MB")
    print(f"aigc estimate (best of {len(runs)}): {best['seconds']:.2f} s, "
          f"peak RSS {best['peak_rss_mb']:.0f} MB (the interpreter + module alone: "
          f"{base['peak_rss_mb']:.0f} MB)")
    print(f"lmplz (README figure, not measured here): {lm_s:.0f} s, {lm_mb:.0f} MB")
    print(f"time ratio aigc/lmplz: {best['seconds'] / lm_s:.2f} (target <= 0.5)")
    print(f"memory ratio aigc/lmplz: {best['peak_rss_mb'] / lm_mb:.2f} (target <= 1.0)")


if __name__ == "__main__":
    main()
