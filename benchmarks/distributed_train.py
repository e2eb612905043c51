"""Training tokens per second on 1 rank against 2 ranks (torchrun, gloo, one machine).

    python benchmarks/distributed_train.py [--steps 60] [--ranks 2] [--set key=value ...]

Trains the same Transformer config (nanoGPT's "baby" CPU shape: 4 layers, 4
heads, 128 dims, context 64; global batch 12 windows x accumulate 2) on
tiny-shakespeare (``../shared/data/tinyshakespeare.txt``) twice in one run: under
``torchrun --nproc-per-node 1`` and under ``torchrun --nproc-per-node N``, one torch
thread per rank (``threads=1``, ``OMP_NUM_THREADS=1``), the runs one after the other.
Prints each run's training tokens/s (the loop's own figure: global tokens over
wall-clock seconds of the training loop, without start-up), the wall-clock time of
the whole command, the ratio N ranks / 1 rank, the largest weight difference
between the two bundles (they train the same global batches), and the load average
before and after each run (``os.getloadavg()``; the machine may be shared).

On a machine with fewer free cores than ranks no speed-up is expected: the point
is that N processes compute the one-process training, and the path to more
machines; a ratio above 1 needs a free core (or machine) per rank.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "tinyshakespeare.txt"
BABY = {"n_layer": 4, "n_head": 4, "n_embd": 128, "context": 64, "batch_size": 12,
        "accumulate": 2, "lr": 1e-3, "min_lr": 1e-4, "warmup_steps": 10, "threads": 1,
        "eval_every": 0, "log_every": 10}


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def train(ranks: int, options: dict[str, str], out: Path) -> dict[str, float]:
    sets = [a for k, v in options.items() for a in ("--set", f"{k}={v}")]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
           str(ranks), "-m", "aigc_engine", "train", "transformer", "--data", str(DATA),
           "-o", str(out), *sets]
    before = load()
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    wall = time.perf_counter() - t0
    if res.returncode:
        sys.exit(f"{ranks} rank(s) failed:\n{res.stderr[-4000:]}")
    metrics = json.loads((out / "manifest.json").read_text())["metrics"]
    print(f"{ranks} rank(s): {metrics['tokens_per_s']:9.0f} tokens/s in the loop, "
          f"{metrics['steps']} steps, {metrics['tokens_seen']} tokens, command "
          f"{wall:5.1f} s wall; load before {before}, after {load()}")
    return {"tokens_per_s": float(metrics["tokens_per_s"]), "wall": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="K=V")
    args = parser.parse_args()
    options = {k: str(v) for k, v in BABY.items()}
    options["max_steps"] = str(args.steps)
    options.update(dict(s.split("=", 1) for s in args.sets))
    print(f"transformer {options}; torch threads per rank: {options['threads']}; "
          f"cores: {os.cpu_count()}")
    with tempfile.TemporaryDirectory(prefix="aigc-dist-bench-") as tmp:
        one = train(1, options, Path(tmp) / "one")
        many = train(args.ranks, options, Path(tmp) / "many")
        from safetensors.torch import load_file

        a = load_file(str(Path(tmp) / "one" / "model.safetensors"))
        b = load_file(str(Path(tmp) / "many" / "model.safetensors"))
        diff = max(float((a[k].double() - b[k].double()).abs().max()) for k in a)
    print(f"ratio {args.ranks} ranks / 1 rank: {many['tokens_per_s'] / one['tokens_per_s']:.2f} "
          f"(tokens/s in the loop), {one['wall'] / many['wall']:.2f} (command wall time); "
          f"largest weight difference {diff:.2e}")


if __name__ == "__main__":
    main()
