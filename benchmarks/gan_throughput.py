"""Generator throughput: torch eager against the ONNX runtime, batch 64, one thread.

    python benchmarks/gan_throughput.py [--bundle TRAINED_GAN_BUNDLE] [--seconds 5]

Without --bundle a digits GAN with the default architecture is trained for 20
steps (throughput does not depend on the weights). Both paths run the same
thing: draw latents for a seed, run the generator, convert to uint8 images.
Rates are images per CPU-second of this process (and per wall second).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from aigc_engine import Engine
from aigc_engine.runtime import OnnxGanGenerator


def rate(fn: Callable[[int], Any], batch: int, seconds: float) -> tuple[float, float]:
    """(images per CPU-second, images per wall-second) of calling fn(i) for ~seconds."""
    for i in range(3):
        fn(i)
    n = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    while time.process_time() - cpu0 < seconds:
        fn(n)
        n += 1
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return n * batch / cpu, n * batch / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=None)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--set", dest="sets", action="append", default=[],
                        help="gan option KEY=VALUE for the model trained without --bundle")
    args = parser.parse_args()
    torch.set_num_threads(1)
    engine = Engine(plugins=["gan"])
    with tempfile.TemporaryDirectory() as tmp:
        if args.bundle is not None:
            gen: Any = engine.load(args.bundle)
        else:
            opts = dict(s.split("=", 1) for s in args.sets)
            gen = engine.create_from_strings("gan", {"steps": "20", **opts})
            gen.fit("digits")
        exported = OnnxGanGenerator.load(gen.export_onnx(Path(tmp) / "onnx"))
        c = gen.cfg
        print(f"generator: {c.image_size}x{c.image_size}x{c.channels}, latent {c.latent_dim}, "
              f"g_width {c.g_width}, conditional {c.conditional}; batch {args.batch}, "
              f"1 thread (torch {torch.__version__}, threads={torch.get_num_threads()})")
        t_cpu, t_wall = rate(lambda i: gen.generate(n=args.batch, seed=i), args.batch,
                             args.seconds)
        o_cpu, o_wall = rate(lambda i: exported.generate(n=args.batch, seed=i), args.batch,
                             args.seconds)
    print(f"torch eager : {t_cpu:10.0f} images/CPU-s  {t_wall:10.0f} images/wall-s")
    print(f"onnxruntime : {o_cpu:10.0f} images/CPU-s  {o_wall:10.0f} images/wall-s")
    print(f"ratio onnxruntime / torch: {o_cpu / t_cpu:.2f}x (CPU time), "
          f"{o_wall / t_wall:.2f}x (wall)")


if __name__ == "__main__":
    main()
