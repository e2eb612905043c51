"""What every torch trainer shares: options, schedules, budgets, checkpoints, curves.

Public for plugin authors (the ``lstm``, ``transformer`` and ``gan`` plugins use
it). It imports torch, so import it only from code that trains; ``import
aigc_engine`` never loads it.

- :class:`TrainConfig`: the training options of a text model (learning rate,
  schedule, budgets, evaluation, checkpoints). Mixed into a generator's config
  class, they are **not** part of the saved model config
  (:meth:`TrainConfig.to_dict` leaves them out, and they do not take part in
  equality): the bundle records them as ``metrics["training"]``.
- :func:`lr_at`: linear warm-up then cosine decay to ``min_lr``.
- :class:`Budget`: ``max_steps`` and ``max_seconds`` (CPU or wall clock).
- :func:`save_checkpoint` / :func:`load_checkpoint`: modules, optimisers and
  JSON metadata in one safetensors file, written atomically (temporary sibling,
  fsync, rename); never pickled. :func:`resume_path`: what ``resume`` (a file,
  or ``auto``: the latest in ``work_dir``) means, also after a torchrun restart.
- :func:`loss_curve`: a PNG of logged losses drawn with Pillow.
- :func:`torch_threads`: a context with the torch thread count set.
- ``train_lm`` and ``TrainResult``: the language-model loop of the text plugins
  (in ``aigc_engine._lm_loop``, reached through this module).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from .config import GeneratorConfig
from .distributed import restart_count
from .errors import AigcError, ConfigError, ModelFormatError
from .tokenizers import Tokenizer

__all__ = [
    "Budget",
    "TrainConfig",
    "TrainingDivergedError",
    "atomic_save_file",
    "checkpoint_step",
    "latest_checkpoint",
    "load_checkpoint",
    "loss_curve",
    "lr_at",
    "optimizer_tensors",
    "restore_optimizer",
    "resume_path",
    "save_checkpoint",
    "tokenizer_fingerprint",
    "torch_threads",
]

CHECKPOINT_FORMAT = "aigc-lm-checkpoint-1"

log = logging.getLogger(__name__)


class TrainingDivergedError(AigcError, RuntimeError):
    """The loss became NaN or infinite; the message names the step and the last good
    checkpoint."""


_TRAIN = {"training": True}


def _t(default: Any) -> Any:
    return dataclasses.field(default=default, compare=False, metadata=_TRAIN)


@dataclasses.dataclass(frozen=True)
class TrainConfig(GeneratorConfig):
    """Training options of a text language model (a mixin of generator configs).

    Optimiser: AdamW with ``lr``, ``beta1``, ``beta2``, ``weight_decay`` (on
    matrices only), gradients clipped to norm ``grad_clip`` (0 = off) and
    accumulated over ``accumulate`` micro-batches of ``batch_size`` windows of
    ``window`` tokens (0 = the model's context). Schedule: linear warm-up over
    ``warmup_steps``, then cosine decay to ``min_lr`` at the end of the budget.
    Budget: ``max_steps`` updates and/or ``max_seconds`` of training time on
    ``clock`` ("wall" or "cpu"); with a time budget the schedule follows
    whichever budget is nearer its end (then runs are reproducible only up to
    the step where time took over). Evaluation: every ``eval_every`` steps on
    ``eval_windows`` evenly spaced validation windows (0 = the whole
    validation text) taken from ``valid`` (a file) or the last
    ``valid_fraction`` of the data; ``keep_best`` keeps the weights of the best
    evaluation; ``patience`` stops after that many evaluations without
    improvement (0 = never). Files: ``work_dir`` gets the loss curve and, every
    ``checkpoint_every`` steps, a checkpoint; ``resume`` continues from one
    (``auto``: the latest in ``work_dir``, if any; a torchrun restart does so by
    itself). Under torchrun ``batch_size`` is the global micro-batch, split over
    the ranks (see :mod:`aigc_engine.distributed`).
    ``threads``: torch threads while training (0 = torch's default); ``seed``:
    weights, data order and dropout (same seed, same weights on CPU).
    ``compile``: ``torch.compile`` the training step's model.
    """

    lr: float = _t(1e-3)
    min_lr: float = _t(1e-4)
    warmup_steps: int = _t(100)
    weight_decay: float = _t(0.1)
    beta1: float = _t(0.9)
    beta2: float = _t(0.99)
    grad_clip: float = _t(1.0)
    accumulate: int = _t(1)
    batch_size: int = _t(12)
    window: int = _t(0)
    max_steps: int = _t(2000)
    max_seconds: float = _t(0.0)
    clock: Literal["wall", "cpu"] = _t("wall")
    eval_every: int = _t(250)
    eval_windows: int = _t(64)
    valid: str = _t("")
    valid_fraction: float = _t(0.0)
    keep_best: bool = _t(True)
    patience: int = _t(0)
    log_every: int = _t(50)
    checkpoint_every: int = _t(0)
    work_dir: str = _t("")
    resume: str = _t("")
    threads: int = _t(0)
    seed: int = _t(0)
    compile: bool = _t(False)

    def validate(self) -> None:
        """Check the training options (each error names the option and its value)."""
        super().validate()
        for name in ("lr",):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.min_lr <= self.lr:
            raise ConfigError(f"min_lr must be in [0, lr={self.lr}], got {self.min_lr}")
        for name in ("warmup_steps", "max_steps", "eval_every", "eval_windows", "patience",
                     "log_every", "checkpoint_every", "threads", "seed", "window"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("accumulate", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.weight_decay < 0 or self.grad_clip < 0 or self.max_seconds < 0:
            raise ConfigError("weight_decay, grad_clip and max_seconds must be >= 0")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ConfigError(f"beta1, beta2 must be in [0, 1), got {self.beta1}, {self.beta2}")
        if not 0 <= self.valid_fraction < 1:
            raise ConfigError(f"valid_fraction must be in [0, 1), got {self.valid_fraction}")
        if self.valid and self.valid_fraction:
            raise ConfigError("give valid (a file) or valid_fraction, not both")
        if self.max_steps == 0 and self.max_seconds == 0:
            raise ConfigError("give a budget: max_steps > 0 or max_seconds > 0")
        if self.checkpoint_every and not self.work_dir:
            raise ConfigError("checkpoint_every needs work_dir (where checkpoints go)")
        if self.resume == "auto" and not self.work_dir:
            raise ConfigError("resume=auto needs work_dir (where its checkpoints are found)")

    @classmethod
    def training_fields(cls) -> list[str]:
        """Names of the training options (the rest of a config is the model's)."""
        return [f.name for f in dataclasses.fields(cls) if f.metadata.get("training")]

    def training_dict(self) -> dict[str, Any]:
        """The training options as JSON-compatible values."""
        return {name: getattr(self, name) for name in self.training_fields()}

    def to_dict(self) -> dict[str, Any]:
        """The model's options only (what a bundle records as its config)."""
        train = set(self.training_fields())
        return {k: v for k, v in super().to_dict().items() if k not in train}

    def replace(self: Any, **changes: Any) -> Any:
        """A copy with some options changed (training options kept), validated again."""
        full = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return type(self).from_mapping({**full, **changes})


def lr_at(progress: float, step: int, *, lr: float, min_lr: float, warmup: int) -> float:
    """Learning rate at ``step``: linear warm-up over ``warmup`` steps, then cosine
    decay from ``lr`` to ``min_lr`` as ``progress`` (the budget's used fraction,
    0 to 1) goes to 1."""
    if warmup and step < warmup:
        return lr * (step + 1) / warmup
    p = min(max(progress, 0.0), 1.0)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * p)) * (lr - min_lr)


@dataclasses.dataclass
class Budget:
    """A training budget: ``max_steps`` (0 = none) and ``max_seconds`` (0 = none) of
    time on ``clock``; :meth:`progress` is the used fraction of the nearer one."""

    max_steps: int = 0
    max_seconds: float = 0.0
    clock: Literal["wall", "cpu"] = "wall"

    def now(self) -> float:
        """The budget's clock (seconds)."""
        return time.process_time() if self.clock == "cpu" else time.perf_counter()

    def progress(self, step: int, seconds: float) -> float:
        """The fraction of the budget used after ``step`` steps and ``seconds``."""
        parts = []
        if self.max_steps:
            parts.append(step / self.max_steps)
        if self.max_seconds:
            parts.append(seconds / self.max_seconds)
        return max(parts) if parts else 0.0

    def done(self, step: int, seconds: float) -> bool:
        """Whether the budget is spent."""
        return (bool(self.max_steps) and step >= self.max_steps) or \
            (bool(self.max_seconds) and seconds >= self.max_seconds)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch threads (0 = leave the setting alone)."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# -- checkpoints ---------------------------------------------------------------------
def atomic_save_file(tensors: Mapping[str, torch.Tensor], path: Path,
                     metadata: Mapping[str, str] | None = None) -> Path:
    """Write a safetensors file atomically: a temporary sibling, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().contiguous() for k, v in tensors.items()}, str(tmp),
              metadata=dict(metadata) if metadata else None)
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    tmp.replace(path)
    return path


def optimizer_tensors(prefix: str, opt: torch.optim.Optimizer,
                      tensors: dict[str, torch.Tensor]) -> Any:
    """Add an optimiser's state tensors to ``tensors`` under ``prefix``; returns its
    param groups (JSON-compatible) for the checkpoint's metadata."""
    sd = opt.state_dict()
    for pid, st in sd["state"].items():
        for k, v in st.items():
            tensors[f"{prefix}.{pid}.{k}"] = torch.as_tensor(v).detach().clone()
    return sd["param_groups"]


def restore_optimizer(prefix: str, opt: torch.optim.Optimizer,
                      tensors: Mapping[str, torch.Tensor], groups: Any) -> None:
    """Load what :func:`optimizer_tensors` saved back into ``opt``."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        if k.startswith(prefix + "."):
            _, pid, name = k.split(".", 2)
            state.setdefault(int(pid), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": groups})


def save_checkpoint(path: Path, *, modules: Mapping[str, torch.nn.Module],
                    optimizers: Mapping[str, torch.optim.Optimizer],
                    meta: Mapping[str, Any], fmt: str = CHECKPOINT_FORMAT,
                    extra: Mapping[str, torch.Tensor] | None = None) -> Path:
    """Modules' state, optimisers' state, ``extra`` tensors and JSON ``meta`` in one
    safetensors file, written atomically."""
    tensors: dict[str, torch.Tensor] = {}
    for prefix, module in modules.items():
        for k, v in module.state_dict().items():
            tensors[f"{prefix}.{k}"] = v.detach().clone()
    groups = {p: optimizer_tensors(p, o, tensors) for p, o in optimizers.items()}
    tensors.update(extra or {})
    metadata = {"format": fmt, "meta": json.dumps(dict(meta)),
                "param_groups": json.dumps(groups)}
    return atomic_save_file(tensors, path, metadata)


def refuse_other_run(path: Path | None, saved: Mapping[str, Any], now: Mapping[str, Any],
                     what: str) -> None:
    """Raise :class:`ConfigError` naming every option of ``now`` that the checkpoint at
    ``path`` (trained with ``saved``) had otherwise; ``what`` says what differs."""
    if saved == now:
        return
    diff = ", ".join(f"{k}={saved.get(k)!r} (now {v!r})" for k, v in now.items()
                     if saved.get(k) != v)
    raise ConfigError(
        f"checkpoint {str(path)!r} comes from {what}: {diff}; resume with the options it "
        "was trained with, or start afresh without resume")


def load_checkpoint(path: Path, *, modules: Mapping[str, torch.nn.Module],
                    optimizers: Mapping[str, torch.optim.Optimizer],
                    fmt: str = CHECKPOINT_FORMAT,
                    check: Callable[[dict[str, Any]], None] | None = None
                    ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Restore a :func:`save_checkpoint` file; returns its meta and all its tensors.
    ``check(meta)`` runs before anything is restored (to refuse a mismatch)."""
    if not path.is_file():
        raise ModelFormatError(f"no checkpoint at {str(path)!r}")
    try:
        with safe_open(str(path), framework="pt") as fh:
            md = fh.metadata() or {}
    except Exception as exc:  # safetensors raises its own error type
        raise ModelFormatError(f"{str(path)!r} is not a safetensors checkpoint: {exc}") from None
    if md.get("format") != fmt:
        raise ModelFormatError(f"{str(path)!r} is not a {fmt} checkpoint")
    meta = json.loads(md["meta"])
    if check is not None:
        check(meta)
    tensors = load_file(str(path))
    try:
        for prefix, module in modules.items():
            module.load_state_dict({k[len(prefix) + 1:]: v for k, v in tensors.items()
                                    if k.startswith(prefix + ".")})
    except RuntimeError as exc:
        raise ModelFormatError(
            f"checkpoint {str(path)!r} does not fit this model's config: {exc}") from None
    groups = json.loads(md["param_groups"])
    for prefix, opt in optimizers.items():
        restore_optimizer(prefix, opt, tensors, groups[prefix])
    return meta, tensors


_STEP_FILE = re.compile(r"^(step_\d+|last)\.safetensors$")


def checkpoint_step(path: Path) -> int | None:
    """The step a checkpoint file was written at (None: not a readable checkpoint)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            md = fh.metadata() or {}
        if "meta" in md:
            return int(json.loads(md["meta"])["step"])
        return int(md["step"])
    except Exception:
        return None


def latest_checkpoint(work_dir: Path) -> Path | None:
    """The readable checkpoint in ``work_dir/checkpoints`` with the highest step."""
    folder = work_dir / "checkpoints"
    if not folder.is_dir():
        return None
    best: tuple[int, int, Path] | None = None
    for path in folder.iterdir():
        if not _STEP_FILE.match(path.name):
            continue
        step = checkpoint_step(path)
        if step is None:
            log.warning("skipping unreadable checkpoint %s", path)
            continue
        key = (step, path.name != "last.safetensors", path)  # step_N over last at equal N
        if best is None or key[:2] > best[:2]:
            best = key
    return best[2] if best else None


def resume_path(resume: str, work_dir: str) -> Path | None:
    """What to resume from: ``resume`` (a checkpoint file), or with ``resume="auto"`` or
    after a torchrun restart the latest checkpoint in ``work_dir`` (None: start afresh)."""
    if resume and resume != "auto":
        return Path(resume).expanduser()
    if resume == "auto" or restart_count() > 0:
        if not work_dir:
            if resume == "auto":
                raise ConfigError("resume=auto needs work_dir (where checkpoints are found)")
            return None
        return latest_checkpoint(Path(work_dir).expanduser())
    return None


def tokenizer_fingerprint(tokenizer: Tokenizer) -> str:
    """A hash of a tokenizer's vocabulary (every token's bytes and the special ids)."""
    h = hashlib.sha256(f"{tokenizer.kind}:{tokenizer.eos_id}:{tokenizer.pad_id}:".encode())
    for i in range(tokenizer.vocab_size):
        b = tokenizer.token_bytes(i)
        h.update(len(b).to_bytes(4, "little") + b)
    return h.hexdigest()[:16]


# -- the loss curve ---------------------------------------------------------------------
_COLOURS = [(200, 40, 40), (40, 90, 200), (40, 150, 60), (150, 60, 160)]


def loss_curve(history: Sequence[Mapping[str, float]], path: Path, *,
               keys: Sequence[str] = ("train_loss", "valid_loss"),
               colours: Sequence[tuple[int, int, int]] | None = None,
               width: int = 640, height: int = 360) -> Path:
    """Plot ``keys`` of the history against ``step`` (one colour each); a PNG at ``path``."""
    from PIL import Image, ImageDraw

    colours = list(colours or _COLOURS)
    series = {k: [(h["step"], h[k]) for h in history if k in h and math.isfinite(h[k])]
              for k in keys}
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    left, right, top, bottom = 50, width - 10, 10, height - 30
    draw.rectangle((left, top, right, bottom), outline=(0, 0, 0))
    points_all = [p for pts in series.values() for p in pts]
    if points_all:
        lo, hi = min(v for _, v in points_all), max(v for _, v in points_all)
        hi = hi if hi > lo else lo + 1.0
        s0, s1 = min(s for s, _ in points_all), max(s for s, _ in points_all)
        s1 = s1 if s1 > s0 else s0 + 1.0

        def xy(step: float, value: float) -> tuple[float, float]:
            return (left + (step - s0) / (s1 - s0) * (right - left),
                    bottom - (value - lo) / (hi - lo) * (bottom - top))

        for i, key in enumerate(keys):
            points = [xy(s, v) for s, v in series[key]]
            colour = colours[i % len(colours)]
            if len(points) > 1:
                draw.line(points, fill=colour, width=2)
            elif points:
                draw.point(points, fill=colour)
        draw.text((2, top), f"{hi:.2f}", fill=(0, 0, 0))
        draw.text((2, bottom - 10), f"{lo:.2f}", fill=(0, 0, 0))
        draw.text((left, bottom + 5), f"step {s0:.0f}", fill=(0, 0, 0))
        draw.text((right - 80, bottom + 5), f"step {s1:.0f}", fill=(0, 0, 0))
    for i, key in enumerate(keys):
        draw.text((left + 10 + 70 * i, top + 5), key, fill=colours[i % len(colours)])
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def __getattr__(name: str) -> Any:
    """``train_lm`` and ``TrainResult`` live in the loop's module (it uses the pieces above)."""
    if name in ("train_lm", "TrainResult"):
        from . import _lm_loop

        return getattr(_lm_loop, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
