"""Acceptance run: DCGAN on the 8x8 digits, one thread, CPU-second budgets, digits-FID.

    python benchmarks/gan_digits.py [--which uncond cond refs] [--out DIR] [--seed 0]

uncond: unconditional, 180 CPU-seconds of training (target digits-FID < 15,
class entropy > 2.25). cond: class-conditional, 60 CPU-seconds (target
digits-FID < 6, >= 95% of samples classified as the requested label).
refs: the metric's reference points (train split = floor, noise, one image).
Training time counts only the update steps (metrics run outside the budget);
the fit's whole process CPU time is printed too. With --out, the bundles and
a sample grid of each model are written there.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import torch

from aigc_engine import Engine

RUNS: dict[str, dict[str, Any]] = {
    "uncond": {"options": {"max_seconds": 180.0, "steps": 0}, "fid": 15.0, "entropy": 2.25},
    "cond": {"options": {"max_seconds": 60.0, "steps": 0, "conditional": True}, "fid": 6.0,
             "label_accuracy": 0.95},
}


def train_and_measure(which: str, *, seed: int = 0, out: Path | None = None,
                      **overrides: Any) -> dict[str, Any]:
    """Train one acceptance model and return its training metrics and digits report."""
    torch.set_num_threads(1)
    spec = RUNS[which]
    engine = Engine(plugins=["gan"])
    gen: Any = engine.create("gan", seed=seed, **{**spec["options"], **overrides})
    cpu0 = time.process_time()
    fit = gen.fit("digits")
    fit_cpu = time.process_time() - cpu0
    report = gen.evaluate("digits-test")
    passed = report["digits_fid"] < spec["fid"]
    if "entropy" in spec:
        passed = passed and report["class_entropy"] > spec["entropy"]
    if "label_accuracy" in spec:
        passed = passed and report["label_accuracy"] >= spec["label_accuracy"]
    result = {"run": which, "seed": seed, "config": gen.config.to_dict(),
              "steps": fit["steps"], "train_cpu_seconds": fit["train_seconds"],
              "fit_process_cpu_seconds": fit_cpu, "report": report, "passed": passed}
    if out is not None:
        gen.metrics.update({f"eval_{k}": v for k, v in report.items()})
        bundle = gen.save(out / f"digits-{which}")
        labels = tuple(i % 10 for i in range(100)) if gen.cfg.conditional else None
        n = 100 if labels else 64
        gen.write_images(gen.generate(n=n, seed=0, labels=labels), out / f"digits-{which}.png")
        result["bundle"] = str(bundle)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--which", nargs="+", default=["refs", "cond", "uncond"],
                        choices=["uncond", "cond", "refs"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    for which in args.which:
        if which == "refs":
            from aigc_engine.plugins.gan import metrics
            from aigc_engine.plugins.gan.datasets import load_digits

            refs = metrics.reference_points(load_digits("train").images,
                                            load_digits("test").images)
            print(json.dumps({"run": "refs", "digits_fid": refs}, indent=1), flush=True)
            continue
        print(json.dumps(train_and_measure(which, seed=args.seed, out=args.out), indent=1),
              flush=True)


if __name__ == "__main__":
    main()
