"""``aigc demo``: the main job on bundled data, in seconds, with no network."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .engine import Engine
from .errors import AigcError
from .generator import TextGenerator
from .progress import Progress


@dataclass(frozen=True)
class DemoPlan:
    """How the demo trains and samples one generator."""

    generator: str
    data: str
    options: dict[str, Any] = field(default_factory=dict)
    prompts: tuple[str, ...] = ("",)
    request: dict[str, Any] = field(default_factory=dict)
    eval_data: str | None = None


#: Best first: the demo uses the first whose generator and data are installed.
PLANS = (
    DemoPlan("ngram", "tinyshakespeare", {"order": 4},
             prompts=("ROMEO:\n", "To be, or not", "KING RICHARD III:\nMy lord,"),
             request={"max_tokens": 60, "top_k": 40, "temperature": 0.9,
                      "stop_at_eos": False}),
    DemoPlan("template", "example-grammar", {}, prompts=("", "", "")),
)


def run_demo(engine: Engine, *, seed: int, output: Path, progress: Progress,
             echo: Callable[[str], None]) -> Path:
    """Train the first available plan's generator, save it, load it back, generate."""
    names = {g.name for g in engine.list_generators()}
    datasets = {spec.name for spec, _ in engine.list_datasets()}
    plan = next((p for p in PLANS if p.generator in names and p.data in datasets), None)
    if plan is None:
        raise AigcError(
            "no demo can run: none of the generators "
            f"{', '.join(p.generator for p in PLANS)} with its bundled data is loaded "
            "(see `aigc plugins`)"
        )
    echo(f"== training {plan.generator!r} on {plan.data!r} "
         f"{' '.join(f'{k}={v}' for k, v in plan.options.items())}")
    gen = engine.create(plan.generator, **plan.options)
    start = time.perf_counter()
    metrics = gen.fit(engine.dataset(plan.data), progress=progress)
    echo(f"   trained in {time.perf_counter() - start:.2f} s "
         f"({', '.join(f'{k}={v}' for k, v in metrics.items() if isinstance(v, (int, str)))})")
    path = gen.save(output)
    loaded = engine.load(path)
    echo(f"== saved and reloaded bundle {path}")
    assert isinstance(loaded, TextGenerator)
    for index, prompt in enumerate(plan.prompts):
        result = loaded.generate(prompt, seed=seed + index, **plan.request)
        shown = f"[{prompt}] " if prompt else ""
        echo(f"\n-- sample {index + 1} (seed {seed + index}) {shown}\n{result.text}")
    return path
