"""Training on several processes and machines: the torch.distributed set-up every torch
trainer shares (public for plugin authors; imports torch).

Launch with torch's own launcher, ``torchrun`` (or ``aigc train ... --nproc-per-node N``,
which runs it): it sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous
store, and :func:`join` turns that into a :class:`World`. Without those variables
(or with a world of one) every helper here is the one-process identity, so a
trainer has one code path.

What a trainer gets from a :class:`World`:

- :meth:`World.rows`: this rank's contiguous slice of a global batch (its shard);
  the union over ranks is exactly the one-process batch. A batch the world size
  does not divide is a :class:`~aigc_engine.errors.ConfigError`.
- :meth:`World.wrap`: ``DistributedDataParallel`` (gloo on CPU with
  ``device_ids=None``, NCCL on CUDA), which averages gradients over ranks: with
  each rank's loss the mean over its rows, the averaged gradient is the gradient
  of the mean over the global batch.
- :func:`sync_batchnorm`: BatchNorm whose training statistics are those of the
  global batch (torch's ``SyncBatchNorm`` on CUDA; on CPU, where it does not
  run, the same arithmetic through ``torch.distributed.nn`` all-reduces).
- :meth:`World.sum`: a float64 all-reduce of a few numbers (losses for the log,
  elapsed time for time budgets, so that every rank stops at the same step).
- :meth:`World.same`: refuse ranks that disagree (tokenizer, config).
- :meth:`World.guard`: when a peer dies (SIGKILL, crash), a collective fails or
  torchrun sends SIGTERM; the guard then finds which ranks stopped (each rank
  bumps a heartbeat counter in the rendezvous store; the ranks whose counter no
  longer moves are gone) and raises :class:`DistributedError` naming them,
  instead of hanging. Collectives also time out after ``AIGC_DIST_TIMEOUT``
  seconds (default 120).
- :func:`restart_count`: how often ``torchrun --max-restarts`` restarted the
  group (a restarted group resumes by itself:
  :func:`aigc_engine.training.resume_path`).

Only rank 0 (:attr:`World.main`) logs, writes checkpoints, curves and bundles.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import datetime
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from .errors import AigcError, ConfigError, DistributedError

__all__ = [
    "DistributedError",
    "World",
    "is_main_process",
    "join",
    "local_device",
    "restart_count",
    "sum_over_ranks",
    "sync_batchnorm",
    "unsync_batchnorm",
]

log = logging.getLogger(__name__)

_HEARTBEAT_S = 0.25
_PROBE_S = 2.0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        raise ConfigError(f"environment variable {name}={value!r} is not an integer") from None


def restart_count() -> int:
    """How often torchrun restarted this group (``TORCHELASTIC_RESTART_COUNT``; 0 = first)."""
    return _env_int("TORCHELASTIC_RESTART_COUNT", 0)


def is_main_process() -> bool:
    """Whether this process is rank 0 (or not part of a distributed run): the one that
    logs and writes files."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return _env_int("RANK", 0) == 0


def local_device(device: torch.device | str) -> torch.device:
    """The device of this process: ``cuda`` becomes ``cuda:LOCAL_RANK`` under torchrun."""
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None and "LOCAL_RANK" in os.environ:
        return torch.device("cuda", _env_int("LOCAL_RANK", 0))
    return dev


class _Terminated(BaseException):
    """SIGTERM arrived (torchrun stops the group when a worker failed)."""


@dataclasses.dataclass
class World:
    """This process's place in a run: ``rank`` of ``size`` (1 = one process)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str = ""
    _store: Any = dataclasses.field(default=None, repr=False)
    _store_lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False)
    _prefix: str = ""
    _stop: threading.Event = dataclasses.field(default_factory=threading.Event, repr=False)
    _beat: threading.Thread | None = dataclasses.field(default=None, repr=False)

    @property
    def distributed(self) -> bool:
        """More than one process."""
        return self.size > 1

    @property
    def main(self) -> bool:
        """Rank 0: logs, checkpoints and writes the outputs."""
        return self.rank == 0

    def rows(self, n: int, *, what: str = "batch_size") -> slice:
        """This rank's contiguous share of ``n`` global rows (rows ``rank * n / size`` to
        ``(rank + 1) * n / size``)."""
        if n % self.size:
            raise ConfigError(
                f"{what}={n} is not divisible by the world size {self.size}: each rank takes "
                f"an equal share of the global batch; use a {what} that is a multiple of "
                f"{self.size} or another number of processes")
        k = n // self.size
        return slice(self.rank * k, (self.rank + 1) * k)

    def wrap(self, module: nn.Module) -> nn.Module:
        """``module`` in DistributedDataParallel (itself in one process). Buffers are not
        broadcast: trainers keep them equal by construction (synchronised BatchNorm)."""
        if not self.distributed:
            return module
        from torch.nn.parallel import DistributedDataParallel as DDP  # noqa: N817

        dev = next(module.parameters()).device
        ids = [dev.index] if dev.type == "cuda" else None
        import inspect

        if "forward_sync_buffers" in inspect.signature(DDP).parameters:  # newer torch's name
            return DDP(module, device_ids=ids, forward_sync_buffers=False)
        return DDP(module, device_ids=ids, broadcast_buffers=False)

    def no_sync(self, module: nn.Module, skip: bool) -> contextlib.AbstractContextManager[Any]:
        """With ``skip``, a context in which the DistributedDataParallel ``module`` does not
        average gradients (accumulation micro-steps); otherwise a no-op context."""
        from torch.nn.parallel import DistributedDataParallel as DDP  # noqa: N817

        if skip and isinstance(module, DDP):
            return module.no_sync()
        return contextlib.nullcontext()

    def sum(self, values: Sequence[float]) -> list[float]:
        """The sums over ranks of ``values`` (float64; the values themselves in one process)."""
        if not self.distributed:
            return [float(v) for v in values]
        t = torch.tensor(list(values), dtype=torch.float64, device=self._device())
        dist.all_reduce(t)
        return [float(v) for v in t.cpu()]

    def mean(self, values: Sequence[float]) -> list[float]:
        """The means over ranks of ``values``."""
        return [v / self.size for v in self.sum(values)]

    def same(self, what: str, value: Any) -> None:
        """Raise :class:`DistributedError` unless every rank has the same JSON ``value``."""
        if not self.distributed:
            return
        import hashlib

        digest = hashlib.sha256(json.dumps(value, sort_keys=True).encode()).digest()
        h = int.from_bytes(digest[:7], "little")
        t = torch.tensor([h, -h], dtype=torch.int64, device=self._device())
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        if int(t[0]) != h or int(t[1]) != -h:
            raise DistributedError(
                f"rank {self.rank}: the ranks disagree on the {what}; every rank must get "
                "the same data, options and package versions")

    def _device(self) -> torch.device:
        if self.backend == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")

    # -- failures ----------------------------------------------------------------------
    def _start_heartbeat(self) -> None:
        host = os.environ.get("MASTER_ADDR", "")
        port = _env_int("MASTER_PORT", 0)
        if not host or not port:
            return
        try:
            self._store = dist.TCPStore(  # type: ignore[attr-defined]
                host, port, is_master=False, timeout=datetime.timedelta(seconds=10),
                wait_for_workers=False)
        except Exception as exc:  # no store to beat in: failures are still reported
            log.warning("rank %d: no heartbeat (store %s:%d: %s)", self.rank, host, port, exc)
            return
        run = os.environ.get("TORCHELASTIC_RUN_ID", "")
        self._prefix = f"aigc/hb/{run}/{restart_count()}/"
        key = f"{self._prefix}{self.rank}"

        def beat() -> None:  # until leave() (at exit) or the store fails
            while not self._stop.wait(_HEARTBEAT_S):
                try:
                    with self._store_lock:
                        self._store.add(key, 1)
                except Exception:
                    return

        self._bump(key)
        self._beat = threading.Thread(target=beat, name="aigc-heartbeat", daemon=True)
        self._beat.start()

    def leave(self) -> None:
        """Stop the heartbeat and close the store (registered at exit by :func:`join`:
        a store or process group still alive while the interpreter shuts down can
        abort the process, "terminate called without an active exception")."""
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=2 * _HEARTBEAT_S)
        with self._store_lock:
            self._store = None

    def _bump(self, key: str, amount: int = 1) -> int:
        with self._store_lock:
            return int(self._store.add(key, amount))

    def stopped_ranks(self) -> list[int] | None:
        """The ranks whose heartbeat stopped over the last ~2 s (None: cannot tell)."""
        if self._store is None:
            return None
        try:
            keys = [f"{self._prefix}{r}" for r in range(self.size)]
            before = [self._bump(k, 0) for k in keys]
            time.sleep(_PROBE_S)
            after = [self._bump(k, 0) for k in keys]
        except Exception:
            return None
        return [r for r in range(self.size) if r != self.rank and after[r] == before[r]]

    def _failure(self, gone: list[int] | None, cause: str) -> DistributedError:
        if gone:
            names = ", ".join(str(r) for r in gone)
            return DistributedError(
                f"rank {names} of {self.size} stopped (killed, crashed or unreachable); rank "
                f"{self.rank} stops too ({cause}). Resume from the last checkpoint with "
                "resume=auto, or let torchrun --max-restarts do it")
        unknown = " (no heartbeat store: the other ranks' state is unknown)" \
            if gone is None else ""
        return DistributedError(
            f"rank {self.rank} of {self.size}: the distributed run failed ({cause}){unknown}")

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        """Turn a peer's death into a :class:`DistributedError` naming it (see module doc).

        Errors of the engine's own (bad options, divergence: raised on every rank
        alike) pass through unchanged."""
        if not self.distributed:
            yield
            return
        previous: Any = None
        in_main = threading.current_thread() is threading.main_thread()

        failing = [False]

        def on_term(signum: int, frame: Any) -> None:
            if not failing[0]:  # a second SIGTERM while the failure is examined: ignored
                failing[0] = True
                raise _Terminated()

        if in_main:
            previous = signal.signal(signal.SIGTERM, on_term)
        try:
            yield
        except _Terminated:
            raise self._failure(self.stopped_ranks(),
                                "torchrun sent SIGTERM: the group is being stopped") from None
        except AigcError:
            raise
        except Exception as exc:
            failing[0] = True
            gone = self.stopped_ranks()
            if gone or isinstance(exc, dist.DistError):
                cause = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
                raise self._failure(gone, cause) from exc
            raise
        finally:
            if in_main:
                signal.signal(signal.SIGTERM, previous)


_WORLD: World | None = None


def _attempt_store(timeout: datetime.timedelta) -> Any:
    """Under torchrun, the agent's store with a prefix of this restart attempt (None
    otherwise). torchrun keeps one store across restarts, and a restarted group must
    not read the addresses the dead group left there (gloo would connect to them)."""
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None
    store = dist.TCPStore(  # type: ignore[attr-defined]
        os.environ["MASTER_ADDR"], _env_int("MASTER_PORT", 0), is_master=False,
        timeout=timeout)
    run = os.environ.get("TORCHELASTIC_RUN_ID", "")
    return dist.PrefixStore(f"aigc/{run}/attempt_{restart_count()}",  # type: ignore[attr-defined]
                            store)


def join(device: torch.device | str = "cpu") -> World:
    """This process's :class:`World`, joining the process group on first use when
    torchrun (``WORLD_SIZE`` > 1) started it: gloo on CPU, NCCL on CUDA."""
    global _WORLD
    size = _env_int("WORLD_SIZE", 1)
    if size <= 1:
        return World()
    if _WORLD is not None:
        return _WORLD
    if not dist.is_available():
        raise ConfigError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    dev = torch.device(device)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    timeout = datetime.timedelta(seconds=_env_int("AIGC_DIST_TIMEOUT", 120))
    if not dist.is_initialized():
        if backend == "nccl":
            torch.cuda.set_device(local_device(dev))
        store = _attempt_store(timeout)
        if store is None:
            dist.init_process_group(backend=backend, timeout=timeout)
        else:
            dist.init_process_group(backend=backend, timeout=timeout, store=store,
                                    rank=_env_int("RANK", 0), world_size=size)
    world = World(rank=dist.get_rank(), size=dist.get_world_size(),
                  local_rank=_env_int("LOCAL_RANK", 0), backend=dist.get_backend())
    world._start_heartbeat()
    _WORLD = world
    atexit.register(_leave, world)
    return world


def _leave(world: World) -> None:
    """At exit: the heartbeat stopped, then the process group destroyed (gloo needs
    no peer for that, so a run whose peer died still exits)."""
    world.leave()
    if dist.is_initialized():
        dist.destroy_process_group()


# -- BatchNorm over the global batch -----------------------------------------------------
class _SumOverRanks(torch.autograd.Function):
    """Sum over ranks whose gradient is the sum over ranks of the gradients: every
    rank's loss depends on every rank's input through the sum."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        out = x.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        out = grad.clone()
        dist.all_reduce(out)
        return out


def sum_over_ranks(x: torch.Tensor) -> torch.Tensor:
    """``x`` summed over the ranks, differentiably (``x`` itself in one process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return x
    out: torch.Tensor = _SumOverRanks.apply(x)  # type: ignore[no-untyped-call]
    return out


class _GlobalBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d with the statistics of the global batch (all ranks) in training
    forwards that record gradients; other forwards (no-grad BatchNorm recalibration,
    eval) behave as BatchNorm2d on this rank's input. Same state dict as BatchNorm2d.

    mean and variance are two-pass (global mean first, then the mean squared
    deviation), as torch's own BatchNorm computes them; gradients flow through the
    all-reduces (:func:`sum_over_ranks`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and torch.is_grad_enabled() and dist.is_initialized()):
            return super().forward(x)
        dims = [0, 2, 3]
        count = x.shape[0] * x.shape[2] * x.shape[3] * dist.get_world_size()
        mean = sum_over_ranks(x.sum(dim=dims)) / count
        centred = x - mean[None, :, None, None]
        var = sum_over_ranks(centred.pow(2).sum(dim=dims)) / count
        if self.track_running_stats and self.running_mean is not None \
                and self.running_var is not None and self.num_batches_tracked is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None \
                    else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * (count / max(count - 1, 1)),
                                                  alpha=m)
        out: torch.Tensor = centred * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            out = out * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return out


def sync_batchnorm(module: nn.Module, world: World) -> nn.Module:
    """Replace ``module``'s BatchNorm2d layers (in place, sharing their parameters and
    buffers, so optimisers and state dicts are unchanged) with ones that use the
    global batch's statistics; a no-op in one process. Returns ``module``."""
    if not world.distributed:
        return module
    for parent in module.modules():
        for name, child in list(parent.named_children()):
            if type(child) is nn.BatchNorm2d:
                if world.backend == "nccl":
                    new: nn.Module = nn.SyncBatchNorm(child.num_features, child.eps,
                                                      child.momentum, child.affine,
                                                      child.track_running_stats)
                else:
                    new = _GlobalBatchNorm(child.num_features, child.eps, child.momentum,
                                           child.affine, child.track_running_stats)
                _share(child, new)
                setattr(parent, name, new)
    return module


def unsync_batchnorm(module: nn.Module) -> nn.Module:
    """Undo :func:`sync_batchnorm` (plain BatchNorm2d layers sharing the same tensors)."""
    for parent in module.modules():
        for name, child in list(parent.named_children()):
            if isinstance(child, (_GlobalBatchNorm, nn.SyncBatchNorm)):
                new = nn.BatchNorm2d(child.num_features, child.eps, child.momentum,
                                     child.affine, child.track_running_stats)
                _share(child, new)
                setattr(parent, name, new)
    return module


def _share(src: nn.Module, dst: nn.Module) -> None:
    for name, p in src.named_parameters(recurse=False):
        setattr(dst, name, p)
    for name, b in src.named_buffers(recurse=False):
        dst.register_buffer(name, b)
    dst.train(src.training)
