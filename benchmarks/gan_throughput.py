"""Generator throughput: torch eager against the ONNX runtime, batch 64, one thread.

    python benchmarks/gan_throughput.py [--bundle TRAINED_GAN_BUNDLE] [--seconds 5]

Without --bundle a digits GAN with the default architecture is trained for 20
steps (throughput does not depend on the weights). Both paths run the same
thing: draw latents for a seed, run the generator, convert to uint8 images.
Rates are images per CPU-second of this process (and per wall second). The
contenders alternate in short slices for --rounds rounds (the machine is
shared: a load change then hits both alike) and the ratio is the median of the
rounds'. Then onnxruntime's profile shows where its time goes, per operator,
next to the latents and the uint8 conversion that both paths share.

The export folds BatchNorm into the convolutions and turns the stem (a
transposed convolution of a 1x1 input) into one Gemm (plugins/gan/export.py);
the session runs with ORT_ENABLE_ALL (NCHWc convolution kernels).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
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


def where_time_goes(model: bytes, gen: Any, batch: int, runs: int = 200) -> None:
    """onnxruntime's own per-operator profile, and the shared pre/post-processing."""
    import onnxruntime as ort  # type: ignore[import-untyped]

    from aigc_engine.runtime.images import latents, to_uint8

    c = gen.cfg
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        options.profile_file_prefix = str(Path(tmp) / "ort")
        session = ort.InferenceSession(model, sess_options=options,
                                       providers=["CPUExecutionProvider"])
        z = latents(0, batch, c.latent_dim)
        feeds: dict[str, Any] = {"z": z}
        if c.conditional:
            feeds["label"] = np.zeros(batch, dtype=np.int64)
        for _ in range(runs):
            out = session.run(["image"], feeds)[0]
        events = json.loads(Path(session.end_profiling()).read_text())
    per_op: dict[str, float] = {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            key = f"{e['args']['op_name']} ({e['name'].removesuffix('_kernel_time')})"
            per_op[key] = per_op.get(key, 0.0) + e["dur"] / runs
    t0 = time.process_time()
    for i in range(runs):
        latents(i, batch, c.latent_dim)
    t_lat = (time.process_time() - t0) / runs * 1e6
    t0 = time.process_time()
    for _ in range(runs):
        to_uint8(out)
    t_u8 = (time.process_time() - t0) / runs * 1e6
    total = sum(per_op.values())
    print(f"where the time goes, per batch of {batch} (onnxruntime profile, us):")
    for key, us in sorted(per_op.items(), key=lambda kv: -kv[1]):
        print(f"  {us:9.1f}  {100 * us / total:5.1f}%  {key}")
    print(f"  {total:9.1f}         all operators")
    print(f"  {t_lat:9.1f}         latents (numpy, both paths)")
    print(f"  {t_u8:9.1f}         to uint8 (numpy, both paths)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=None)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="CPU seconds per contender, over all rounds")
    parser.add_argument("--rounds", type=int, default=10)
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
              f"1 thread (torch {torch.__version__}, threads={torch.get_num_threads()}); "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        slice_s = args.seconds / args.rounds
        ratios, t_all, o_all = [], [], []
        for _ in range(args.rounds):
            t_cpu, t_wall = rate(lambda i: gen.generate(n=args.batch, seed=i), args.batch,
                                 slice_s)
            o_cpu, o_wall = rate(lambda i: exported.generate(n=args.batch, seed=i),
                                 args.batch, slice_s)
            ratios.append(o_cpu / t_cpu)
            t_all.append(t_cpu)
            o_all.append(o_cpu)
        print(f"torch eager : {statistics.median(t_all):10.0f} images/CPU-s (median of "
              f"{args.rounds} slices of {slice_s:.2f} s)")
        print(f"onnxruntime : {statistics.median(o_all):10.0f} images/CPU-s")
        print(f"ratio onnxruntime / torch (CPU time): median {statistics.median(ratios):.2f}x, "
              f"range {min(ratios):.2f}-{max(ratios):.2f}x (target >= 1.5)")
        assert exported._model is not None
        where_time_goes(exported._model, gen, args.batch)

if __name__ == "__main__":
    main()
