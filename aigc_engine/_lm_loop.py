"""The training loop of token language models (public as ``aigc_engine.training.train_lm``)."""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .distributed import World, join
from .errors import ConfigError
from .progress import Progress
from .training import (
    Budget,
    TrainConfig,
    TrainingDivergedError,
    load_checkpoint,
    loss_curve,
    lr_at,
    refuse_other_run,
    resume_path,
    save_checkpoint,
    torch_threads,
)

log = logging.getLogger(__name__)

#: Keys of the torch RNG (dropout) for step s: seed * _MIX + s (+ rank * _RANK_KEY).
_MIX = 1_000_003
_RANK_KEY = 1 << 48
#: The options that define a run's batches and dropout: a checkpoint continues only
#: a run with the same ones.
_RUN_OPTIONS = ("seed", "batch_size", "accumulate")


@dataclasses.dataclass
class TrainResult:
    """What :func:`train_lm` did: steps, tokens seen, time, history and the best evaluation."""

    steps: int = 0
    tokens_seen: int = 0
    train_seconds: float = 0.0
    history: list[dict[str, float]] = dataclasses.field(default_factory=list)
    best_valid: float | None = None
    best_step: int = -1
    stopped: str = ""
    bad_evals: int = 0
    resumed_from: int = -1


def batch(data: torch.Tensor, *, seed: int, index: int, size: int, window: int,
          shard: slice | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Micro-batch ``index`` of a run: ``size`` windows at starts drawn by Philox(seed, index)
    (only the windows ``shard`` of them: a rank's share)."""
    rng = np.random.Generator(np.random.Philox(key=[seed, index]))
    starts = torch.from_numpy(rng.integers(0, len(data) - window, size=size))
    if shard is not None:
        starts = starts[shard]
    offsets = torch.arange(window + 1)
    rows = data[starts[:, None] + offsets[None, :]]
    return rows[:, :-1].contiguous(), rows[:, 1:].contiguous()


def eval_starts(n_tokens: int, window: int, windows: int) -> list[tuple[int, int]]:
    """(start, length) of the evaluation windows: ``windows`` evenly spaced ones, or
    (0) consecutive windows over the whole text."""
    if n_tokens < 2:
        return []
    w = min(window, n_tokens - 1)
    if windows == 0:
        out = [(s, w) for s in range(0, n_tokens - 1 - w + 1, w)]
        done = out[-1][0] + w if out else 0
        if done < n_tokens - 1:
            out.append((done, n_tokens - 1 - done))
        return out
    starts = np.linspace(0, n_tokens - 1 - w, num=windows).astype(np.int64)
    return [(int(s), w) for s in starts]


def window_loss(model: torch.nn.Module, data: torch.Tensor, windows: list[tuple[int, int]],
                *, batch_size: int, world: World | None = None) -> float:
    """Mean cross-entropy (nats per token) over the given windows (split over the ranks of
    ``world``, each evaluating every size-th window)."""
    world = world or World()
    total, count = window_sums(model, data, windows[world.rank::world.size],
                               batch_size=batch_size)
    total, tokens = world.sum([total, count])
    return total / max(tokens, 1.0)


@torch.no_grad()
def window_sums(model: torch.nn.Module, data: torch.Tensor, windows: list[tuple[int, int]],
                *, batch_size: int) -> tuple[float, int]:
    """Summed cross-entropy (nats) and the number of tokens predicted over the windows."""
    was = model.training
    model.eval()
    total, count = 0.0, 0
    by_len: dict[int, list[int]] = {}
    for s, w in windows:
        by_len.setdefault(w, []).append(s)
    for w, starts in by_len.items():
        offsets = torch.arange(w + 1)
        for i in range(0, len(starts), batch_size):
            st = torch.tensor(starts[i:i + batch_size])
            rows = data[st[:, None] + offsets[None, :]]
            dev = next(model.parameters()).device
            if dev.type != "cpu":
                rows = rows.to(dev)
            logits = model(rows[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(),
                                   rows[:, 1:].reshape(-1), reduction="sum")
            total += float(loss)
            count += rows.shape[0] * w
    model.train(was)
    return total, count


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    seen: set[int] = set()
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for p in model.parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        (decay if p.dim() >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def train_lm(model: torch.nn.Module, train: torch.Tensor, valid: torch.Tensor | None,
             cfg: TrainConfig, *, window: int, name: str, fingerprint: str,
             model_config: dict[str, Any], progress: Progress | None = None,
             device: torch.device | None = None) -> TrainResult:
    """Train ``model`` (``model(x) -> logits``, x: (B, T) int64) on a token stream.

    Micro-batch ``i`` of the run holds ``batch_size`` windows of ``window``
    tokens at starts drawn by Philox(seed, i), and dropout in step ``s`` draws
    from torch's RNG seeded with ``seed * 1000003 + s`` (inside a forked RNG):
    a run is a function of its options and data only, so a resumed run equals
    an uninterrupted one on CPU. ``fingerprint`` (the tokenizer's) and
    ``model_config`` are stored in checkpoints and must match on resume.
    Raises :class:`TrainingDivergedError` when the loss stops being finite.

    Under torchrun (see :mod:`aigc_engine.distributed`) every micro-batch is
    split over the ranks (rank ``r`` of ``W`` computes its rows ``r * B / W`` to
    ``(r + 1) * B / W``), the model runs in DistributedDataParallel (gradients
    synchronised on the last micro-batch of a step only) and its averaged
    gradient is the one-process gradient of the mean over the global batch; rank
    ``r > 0`` keys its dropout with ``r * 2**48`` more. Only rank 0 reports
    progress and writes files.
    """
    world = join(device or "cpu")
    if world.distributed:
        world.rows(cfg.batch_size)  # a clear error before anything else
        world.same("tokenizer, model config and training options",
                   [fingerprint, model_config, cfg.training_dict(), len(train)])
    progress = (progress or Progress()) if world.main else Progress()
    if len(train) < window + 1:
        raise ConfigError(
            f"the training data has {len(train)} tokens, shorter than one training window of "
            f"{window} tokens plus its target; give more text or a smaller context/window")
    work = Path(cfg.work_dir).expanduser() if cfg.work_dir else None
    res = TrainResult()
    groups = _param_groups(model, cfg.weight_decay)
    # fused: one kernel for the whole update (4% of a baby-shape step on this CPU, measured
    # by benchmarks/text_lm.py steps); the same arithmetic on resume and on every rank
    opt = torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=True)
    best_state: dict[str, torch.Tensor] | None = None
    last_good: str = "none (set checkpoint_every and work_dir to keep some)"
    eval_windows = eval_starts(len(valid), window, cfg.eval_windows) if valid is not None else []
    run_options = {k: getattr(cfg, k) for k in _RUN_OPTIONS} | {"window": window}
    resume = resume_path(cfg.resume, cfg.work_dir)

    def check(meta: dict[str, Any]) -> None:
        if meta.get("tokenizer") != fingerprint:
            raise ConfigError(
                f"checkpoint {str(resume)!r} was trained with another tokenizer (fingerprint "
                f"{meta.get('tokenizer')}, this run's is {fingerprint}); resume with the same "
                "data and tokenizer options, or start afresh without resume")
        if meta.get("model_config") != model_config:
            raise ConfigError(
                f"checkpoint {str(resume)!r} holds a model with config {meta.get('model_config')}, "
                f"not {model_config}")
        refuse_other_run(resume, meta.get("run", run_options), run_options,
                         "a run with other batches")

    if resume is not None:
        meta, tensors = load_checkpoint(resume, modules={"model": model},
                                        optimizers={"opt": opt}, check=check)
        res = TrainResult(steps=meta["step"], tokens_seen=meta["tokens"],
                          train_seconds=meta["seconds"], history=meta["history"],
                          best_valid=meta["best_valid"], best_step=meta["best_step"],
                          bad_evals=meta["bad_evals"], resumed_from=meta["step"])
        best = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")}
        best_state = best or None
        last_good = str(resume)
        progress.log(f"resumed from {resume} at step {res.steps}")

    def checkpoint(path: Path) -> Path:
        meta = {"step": res.steps, "tokens": res.tokens_seen, "seconds": res.train_seconds,
                "history": res.history, "best_valid": res.best_valid,
                "best_step": res.best_step, "bad_evals": res.bad_evals,
                "tokenizer": fingerprint, "model_config": model_config, "generator": name,
                "run": run_options, "world_size": world.size,
                "rng": "data: Philox(seed, step * accumulate + micro-batch); dropout: torch "
                       "seeded with seed * 1000003 + step (+ rank * 2**48) each step"}
        extra = {f"best.{k}": v for k, v in (best_state or {}).items()}
        return save_checkpoint(path, modules={"model": model}, optimizers={"opt": opt},
                               meta=meta, extra=extra)

    budget = Budget(cfg.max_steps, cfg.max_seconds, cfg.clock)
    ddp = world.wrap(model)
    step_model: Any = torch.compile(ddp) if cfg.compile else ddp
    accum, bsz = cfg.accumulate, cfg.batch_size
    shard = world.rows(bsz) if world.distributed else None
    sum_loss, n_loss = 0.0, 0
    wall0, tok0 = time.perf_counter(), res.tokens_seen
    total = cfg.max_steps or None
    with world.guard(), torch_threads(cfg.threads), torch.random.fork_rng(devices=[]), \
            progress.task(f"training {name}", total=total, unit="step") as task:
        task.advance(res.steps)
        model.train()
        while not budget.done(res.steps, res.train_seconds):
            s = res.steps
            t0 = budget.now()
            lr = lr_at(budget.progress(s, res.train_seconds), s, lr=cfg.lr, min_lr=cfg.min_lr,
                       warmup=cfg.warmup_steps)
            for g in opt.param_groups:
                g["lr"] = lr
            torch.manual_seed(cfg.seed * _MIX + s + world.rank * _RANK_KEY)
            loss_value = 0.0
            for m in range(accum):
                x, y = batch(train, seed=cfg.seed, index=s * accum + m, size=bsz, window=window,
                             shard=shard)
                if device is not None and device.type != "cpu":
                    x, y = x.to(device), y.to(device)
                # DDP averages gradients over ranks on the step's last micro-batch only.
                with world.no_sync(ddp, m < accum - 1):
                    logits = step_model(x)
                    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(),
                                           y.reshape(-1)) / accum
                    loss.backward()  # type: ignore[no-untyped-call]
                loss_value += float(loss.detach())
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip) \
                if cfg.grad_clip else torch.tensor(0.0)
            if world.distributed:  # the global batch's loss, the same on every rank
                loss_value = world.mean([loss_value])[0]
            if not (math.isfinite(loss_value) and math.isfinite(float(norm))):
                raise TrainingDivergedError(
                    f"training {name} diverged at step {s + 1}: loss {loss_value}, gradient "
                    f"norm {float(norm)}; last good checkpoint: {last_good}; lower lr or "
                    "raise warmup_steps and resume from it")
            opt.step()
            opt.zero_grad(set_to_none=True)
            elapsed = budget.now() - t0
            if world.distributed and cfg.max_seconds:  # every rank stops at the same step
                elapsed = world.mean([elapsed])[0]
            res.steps = s = s + 1
            res.train_seconds += elapsed
            res.tokens_seen += accum * bsz * window
            sum_loss += loss_value
            n_loss += 1
            task.advance(1)
            entry: dict[str, float] = {}
            final = budget.done(s, res.train_seconds)
            if (cfg.log_every and s % cfg.log_every == 0) or final:
                rate = (res.tokens_seen - tok0) / max(time.perf_counter() - wall0, 1e-9)
                entry.update(step=float(s), train_loss=sum_loss / n_loss, lr=lr,
                             tokens_per_s=rate, train_seconds=res.train_seconds)
                task.set(loss=entry["train_loss"], tok_s=rate)
                sum_loss, n_loss = 0.0, 0
            stop = False
            if eval_windows and ((cfg.eval_every and s % cfg.eval_every == 0) or final):
                v = window_loss(model, valid, eval_windows, batch_size=4 * bsz, world=world) \
                    if valid is not None else math.nan
                entry.update(step=float(s), valid_loss=v)
                progress.log(f"step {s}: valid loss {v:.4f}")
                if res.best_valid is None or v < res.best_valid:
                    res.best_valid, res.best_step, res.bad_evals = v, s, 0
                    if cfg.keep_best:
                        best_state = {k: t.detach().clone()
                                      for k, t in model.state_dict().items()}
                else:
                    res.bad_evals += 1
                    if cfg.patience and res.bad_evals >= cfg.patience:
                        stop = True
            if entry:
                res.history.append(entry)
            if work is not None and cfg.checkpoint_every and s % cfg.checkpoint_every == 0:
                last_good = str(work / "checkpoints" / f"step_{s:07d}.safetensors")
                if world.main:
                    checkpoint(Path(last_good))
                    progress.log(f"checkpoint {last_good}")
            if stop:
                res.stopped = "early_stopping"
                break
    if not res.stopped:
        res.stopped = "max_steps" if cfg.max_steps and res.steps >= cfg.max_steps \
            else "max_seconds"
    if work is not None and world.main:
        checkpoint(work / "checkpoints" / "last.safetensors")
        if res.history:
            loss_curve(res.history, work / "loss_curve.png")
    if cfg.keep_best and best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return res
