"""The GAN training loop: alternating D and G updates, budgets, samples, checkpoints, resume.

Reproducible on CPU: weights are initialised under ``seed``, the data order of
step ``s`` is a function of ``(seed, s)`` only, and latents come from a seeded
``torch.Generator`` whose state is checkpointed, so a resumed run continues
exactly as an uninterrupted one would (with the same thread count).

Under torchrun (:mod:`aigc_engine.distributed`) every rank draws the global
batch's indices and latents (so every noise generator stays in step) and keeps
its rows of them; G and D run in DistributedDataParallel with BatchNorm over
the global batch, so W ranks train as one process at the same ``batch_size``.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from aigc_engine.distributed import World, sync_batchnorm, unsync_batchnorm
from aigc_engine.plugin_api import ConfigError, ModelFormatError, Progress
from aigc_engine.training import (
    Budget,
    atomic_save_file,
    optimizer_tensors,
    refuse_other_run,
    restore_optimizer,
)

from .nets import DCGANDiscriminator, DCGANGenerator, d_loss, g_loss

log = logging.getLogger(__name__)


@dataclass
class TrainState:
    """What a checkpoint holds besides the networks and optimisers."""

    step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    train_seconds: float = 0.0


@dataclass
class Trainer:
    """Runs the updates for one GAN; built by ``GanGenerator.fit``."""

    g: DCGANGenerator
    d: DCGANDiscriminator
    x: torch.Tensor  # (N, C, S, S) in [-1, 1]
    y: torch.Tensor | None  # (N,) int64, conditional only
    loss: str
    batch_size: int
    seed: int
    lr_g: float
    lr_d: float
    betas: tuple[float, float]
    ema: float = 0.0
    state: TrainState = field(default_factory=TrainState)
    world: World = field(default_factory=World)
    run_config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.batch_size > self.x.shape[0]:
            raise ConfigError(f"batch_size={self.batch_size} is larger than the dataset "
                              f"({self.x.shape[0]} images)")
        self.shard = self.world.rows(self.batch_size) if self.world.distributed else None
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=self.lr_g, betas=self.betas)
        self.opt_d = torch.optim.Adam(self.d.parameters(), lr=self.lr_d, betas=self.betas)
        self.noise = torch.Generator().manual_seed(self.seed)
        self.g_ema: DCGANGenerator | None = None
        if self.ema > 0:  # a copy with plain BatchNorm (it is never trained)
            self.g_ema = copy.deepcopy(self.g).eval()
            self.g_ema.requires_grad_(False)
        self._perm: tuple[int, np.ndarray[Any, Any]] | None = None
        # What the steps call: the networks in DDP with global-batch BatchNorm (in one
        # process, the networks themselves).
        self.g_step = self.world.wrap(sync_batchnorm(self.g, self.world))
        self.d_step = self.world.wrap(sync_batchnorm(self.d, self.world))

    def finish(self) -> None:
        """After training: plain BatchNorm layers again (for sampling, saving, export)."""
        unsync_batchnorm(self.g)
        unsync_batchnorm(self.d)

    def batch_index(self, step: int) -> torch.Tensor:
        """Indices of step ``step``'s real batch: epoch ``e`` is a Philox(seed, e) permutation."""
        per_epoch = self.x.shape[0] // self.batch_size
        epoch, pos = divmod(step, per_epoch)
        if self._perm is None or self._perm[0] != epoch:
            rng = np.random.Generator(np.random.Philox(key=[self.seed, epoch]))
            self._perm = (epoch, rng.permutation(self.x.shape[0]))
        idx = self._perm[1][pos * self.batch_size:(pos + 1) * self.batch_size]
        return torch.from_numpy(idx.astype(np.int64))

    def step(self) -> tuple[float, float]:
        """One discriminator and one generator update; returns (d_loss, g_loss)."""
        idx = self.batch_index(self.state.step)
        z = torch.randn(len(idx), self.g.latent_dim, generator=self.noise)
        if self.shard is not None:  # this rank's rows of the global batch
            idx, z = idx[self.shard], z[self.shard]
        real = self.x[idx]
        label = self.y[idx] if self.y is not None else None
        fake = self.g_step(z, label)
        loss_d = d_loss(self.loss, self.d_step(real, label), self.d_step(fake.detach(), label))
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()  # type: ignore[no-untyped-call]
        self.opt_d.step()
        with self.world.no_sync(self.d_step, True):  # D's gradients here are discarded
            loss_g = g_loss(self.loss, self.d_step(fake, label))
            self.opt_g.zero_grad(set_to_none=True)
            loss_g.backward()  # type: ignore[no-untyped-call]
        self.opt_g.step()
        self.state.step += 1
        if self.g_ema is not None:
            self._update_ema()
        return float(loss_d.detach()), float(loss_g.detach())

    @torch.no_grad()
    def _update_ema(self) -> None:
        """g_ema <- decay * g_ema + (1 - decay) * g, decay warming up as (1 + s) / (10 + s);
        BatchNorm statistics are copied from g."""
        assert self.g_ema is not None
        s = self.state.step
        decay = min(self.ema, (1.0 + s) / (10.0 + s))
        for pe, p in zip(self.g_ema.parameters(), self.g.parameters(), strict=True):
            pe.lerp_(p, 1.0 - decay)
        for be, b in zip(self.g_ema.buffers(), self.g.buffers(), strict=True):
            be.copy_(b)

    def modules(self) -> list[tuple[str, torch.nn.Module]]:
        """The networks a checkpoint holds, by prefix."""
        out: list[tuple[str, torch.nn.Module]] = [("g", self.g), ("d", self.d)]
        if self.g_ema is not None:
            out.append(("g_ema", self.g_ema))
        return out

    # -- checkpoints -------------------------------------------------------------
    def save_checkpoint(self, path: Path) -> Path:
        """Networks, optimiser moments, noise RNG and progress in one safetensors file."""
        tensors: dict[str, torch.Tensor] = {}
        for prefix, module in self.modules():
            for k, v in module.state_dict().items():
                tensors[f"{prefix}.{k}"] = v.detach().clone().contiguous()
        groups = {prefix: optimizer_tensors(prefix, opt, tensors)
                  for prefix, opt in (("opt_g", self.opt_g), ("opt_d", self.opt_d))}
        tensors["rng.noise"] = self.noise.get_state()
        meta = {"step": str(self.state.step), "train_seconds": repr(self.state.train_seconds),
                "history": json.dumps(self.state.history), "param_groups": json.dumps(groups),
                "format": "aigc-gan-checkpoint-1", "config": json.dumps(self.run_config),
                "world_size": str(self.world.size)}
        return atomic_save_file(tensors, path, meta)

    def load_checkpoint(self, path: Path) -> None:
        """Restore a checkpoint written by :meth:`save_checkpoint` for the same config."""
        from safetensors import safe_open

        if not path.is_file():
            raise ModelFormatError(f"no checkpoint at {str(path)!r}")
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
        if meta.get("format") != "aigc-gan-checkpoint-1":
            raise ModelFormatError(f"{str(path)!r} is not a GAN checkpoint")
        saved = json.loads(meta.get("config", "{}"))
        if saved and self.run_config:
            refuse_other_run(path, saved, self.run_config, "another GAN config")
        tensors = load_file(str(path))
        try:
            for prefix, module in self.modules():
                module.load_state_dict({k[len(prefix) + 1:]: v for k, v in tensors.items()
                                        if k.startswith(prefix + ".")})
        except RuntimeError as exc:
            raise ModelFormatError(
                f"checkpoint {str(path)!r} does not fit this GAN's config: {exc}") from None
        groups = json.loads(meta["param_groups"])
        for prefix, opt in (("opt_g", self.opt_g), ("opt_d", self.opt_d)):
            restore_optimizer(prefix, opt, tensors, groups[prefix])
        self.noise.set_state(tensors["rng.noise"])
        self.state = TrainState(step=int(meta["step"]), history=json.loads(meta["history"]),
                                train_seconds=float(meta["train_seconds"]))


def run(trainer: Trainer, *, budget: Budget, progress: Progress, log_every: int,
        every: list[tuple[int, Callable[[Trainer], dict[str, float] | None]]]) -> TrainState:
    """Train until the budget (``max_steps`` updates or ``max_seconds`` of training time
    on its clock) is spent.

    ``every`` holds (period, callback) pairs run after each period-th step
    (samples, checkpoints, metrics); their time does not count against the
    budget. Callbacks may return metrics to add to the history. Distributed, the
    callers give callbacks to rank 0 only; the logged losses are the global batch's
    on every rank, and a time budget ends every rank at the same step.
    """
    state = trainer.state
    world = trainer.world
    steps, max_seconds = budget.max_steps, budget.max_seconds
    trainer.g.train()
    trainer.d.train()
    sums = [0.0, 0.0]
    count = 0
    wall0 = time.perf_counter()
    seg_step0 = state.step
    budget_hit = False
    with world.guard(), progress.task("training gan", total=steps, unit="step") as task:
        task.advance(state.step)
        while state.step < steps:
            t0 = budget.now()
            ld, lg = trainer.step()
            elapsed = budget.now() - t0
            if world.distributed and max_seconds:  # every rank stops at the same step
                elapsed = world.mean([elapsed])[0]
            state.train_seconds += elapsed
            sums[0] += ld
            sums[1] += lg
            count += 1
            task.advance(1)
            s = state.step
            if log_every and (s % log_every == 0 or s == steps):
                sums = world.mean(sums)  # the global batch's losses
                rate = (s - seg_step0) * trainer.batch_size / max(time.perf_counter() - wall0,
                                                                 1e-9)
                entry = {"step": float(s), "d_loss": sums[0] / count, "g_loss": sums[1] / count,
                         "images_per_s": rate, "train_seconds": state.train_seconds}
                state.history.append(entry)
                task.set(d_loss=entry["d_loss"], g_loss=entry["g_loss"], img_s=rate)
                sums, count = [0.0, 0.0], 0
            for period, callback in every:
                if period and s % period == 0:
                    extra = callback(trainer)
                    trainer.g.train()
                    if extra:
                        if state.history and state.history[-1]["step"] == float(s):
                            state.history[-1].update(extra)
                        else:
                            state.history.append({"step": float(s), **extra})
                        progress.log(f"step {s}: " + ", ".join(
                            f"{k}={v:.4g}" for k, v in extra.items()))
            if budget.done(state.step, state.train_seconds) and state.step < steps:
                budget_hit = True
                break
    if budget_hit:
        log.info("time budget of %.1f s reached after %d steps", max_seconds, state.step)
    return state
