"""Make the sample grids shown in docs/gan.md with the commands it lists (the `aigc` CLI).

    python scripts/sample_grids.py [--out docs] [--work /tmp/aigc-gan-grids]

Runs, one thread each:
    aigc train gan --data digits --set max_seconds=180 --set steps=0 -o WORK/digits-gan
    aigc generate WORK/digits-gan -n 64 --seed 0 --out OUT/gan_digits.png
    aigc train gan --data digits --set conditional=true --set max_seconds=60 --set steps=0 \\
        -o WORK/digits-cgan
    aigc generate WORK/digits-cgan -n 100 --seed 0 --out OUT/gan_digits_cond.png
    aigc export WORK/digits-cgan --format onnx -o WORK/digits-cgan-onnx
    aigc generate WORK/digits-cgan-onnx -n 100 --seed 0 --out WORK/gan_digits_cond_onnx.png
The conditional grid's labels are 0..9 along each row (the default for a
conditional request without --label). The images are not committed by CI.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
from pathlib import Path


def run(cmd: list[str]) -> None:
    """Run one command, echoing it, with torch on one thread."""
    print("$", shlex.join(cmd), flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(cmd, check=True, env=env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/aigc-gan-grids"))
    args = parser.parse_args()
    w, o = args.work, args.out
    run(["aigc", "train", "gan", "--data", "digits", "--set", "max_seconds=180",
         "--set", "steps=0", "-o", str(w / "digits-gan")])
    run(["aigc", "generate", str(w / "digits-gan"), "-n", "64", "--seed", "0",
         "--out", str(o / "gan_digits.png")])
    run(["aigc", "train", "gan", "--data", "digits", "--set", "conditional=true",
         "--set", "max_seconds=60", "--set", "steps=0", "-o", str(w / "digits-cgan")])
    run(["aigc", "generate", str(w / "digits-cgan"), "-n", "100", "--seed", "0",
         "--out", str(o / "gan_digits_cond.png")])
    run(["aigc", "export", str(w / "digits-cgan"), "--format", "onnx",
         "-o", str(w / "digits-cgan-onnx")])
    run(["aigc", "generate", str(w / "digits-cgan-onnx"), "-n", "100", "--seed", "0",
         "--out", str(w / "gan_digits_cond_onnx.png")])


if __name__ == "__main__":
    main()
