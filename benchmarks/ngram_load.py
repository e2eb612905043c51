"""Loading an n-gram model: the compact binary format against ARPA, in one run.

    python benchmarks/ngram_load.py [--corpus PATH] [--order 5] [--repeat 3]

Estimates a model (default: order 5 on ../shared/data/ts_train.txt), writes it
as ARPA and binary, then prints the median load time of each, the files' sizes
and the ratio ARPA/binary.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from aigc_engine.ngram import NgramModel

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def median_load(load: object, path: Path, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        load(path)  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DATA / "ts_train.txt")
    parser.add_argument("--order", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    model = NgramModel.estimate(args.corpus, args.order)
    with tempfile.TemporaryDirectory() as tmp:
        arpa, binary = Path(tmp) / "m.arpa", Path(tmp) / "m.bin"
        model.write_arpa(arpa)
        model.save_binary(binary)
        t_arpa = median_load(NgramModel.read_arpa, arpa, args.repeat)
        t_bin = median_load(NgramModel.load_binary, binary, args.repeat)
        print(f"model: order {args.order} on {args.corpus.name}, {sum(model.counts):,} n-grams")
        print(f"ARPA   {arpa.stat().st_size / 1e6:8.1f} MB  read_arpa   {t_arpa:8.3f} s")
        print(f"binary {binary.stat().st_size / 1e6:8.1f} MB  load_binary {t_bin:8.3f} s")
        print(f"ratio ARPA/binary load time: {t_arpa / t_bin:.1f}x")


if __name__ == "__main__":
    main()
