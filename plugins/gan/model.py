"""The ``gan`` generator: DCGAN training, seeded generation, metrics, bundles and ONNX export."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt

from aigc_engine.plugin_api import (
    ConfigError,
    Dataset,
    GeneratorConfig,
    ImageGenerator,
    ImageRequest,
    ImageResult,
    Manifest,
    MissingDependencyError,
    ModelFormatError,
    Progress,
    read_json,
)

try:
    import torch
    from safetensors.torch import load_file, save_file

    from aigc_engine.distributed import join
    from aigc_engine.training import Budget, resume_path, torch_threads
except ImportError as exc:  # an operator's server: use the exported gan-onnx bundle instead
    raise MissingDependencyError(
        "the gan generator (training, torch bundles; exported gan-onnx bundles run without it)",
        package="torch", extra="train") from exc
from aigc_engine.runtime import OnnxGanConfig, OnnxGanGenerator, class_labels, latents, to_uint8
from aigc_engine.runtime import write_images as _write_images

from . import plots
from .datasets import ImageDataset, ImageFolder, load_digits
from .export import InferenceGenerator
from .nets import SIZES, DCGANDiscriminator, DCGANGenerator, dcgan_init
from .train import Trainer, run

log = logging.getLogger(__name__)

#: Options that do not change what a run computes (a checkpoint may be resumed with others).
_NOT_RUN_OPTIONS = ("steps", "max_seconds", "clock", "threads", "log_every", "sample_every",
                    "checkpoint_every", "eval_every", "work_dir", "resume", "bn_batches")

G_FILE = "generator.safetensors"
D_FILE = "discriminator.safetensors"
HISTORY_FILE = "history.json"


@dataclasses.dataclass(frozen=True)
class GanConfig(GeneratorConfig):
    """Options of the ``gan`` generator (DCGAN).

    Architecture: ``image_size`` (8, 16, 32 or 64; 0 = from the data: the largest
    supported size not above its smallest image side), ``channels`` (1 or 3;
    0 = from the data: 3 when any image is in colour),
    ``latent_dim``, ``g_width``/``d_width`` (channels of the widest layer is
    width * 2**(log2(size) - 2)), ``conditional`` (needs labelled data;
    ``num_classes``/``class_names`` are filled in by ``fit``).
    Training: ``loss`` ("nonsaturating" or "hinge"), Adam ``lr_g``, ``lr_d``,
    ``beta1``, ``beta2``, ``batch_size``; ``ema``: generate with an exponential
    moving average of G's weights with this decay (0 = the last weights), whose
    BatchNorm statistics are re-estimated over ``bn_batches`` batches of 256
    latents after training (0 = keep the running statistics); stops after ``steps`` updates or
    ``max_seconds`` of training time on ``clock`` ("cpu": process CPU time,
    "wall"), whichever comes first; ``seed``; ``threads`` (torch threads
    while training). ``work_dir``: where ``sample_every`` grids, the loss
    curve and ``checkpoint_every`` checkpoints go; ``resume``: a checkpoint to
    continue from (``auto``: the latest in ``work_dir``, if any; after a torchrun
    restart that is the default); ``eval_every``: digits metrics in the training log.
    """

    image_size: int = 0
    channels: int = 0
    latent_dim: int = 32
    g_width: int = 32
    d_width: int = 32
    conditional: bool = False
    g_labels: Literal["input", "all"] = "input"
    d_labels: Literal["input", "all", "projection"] = "input"
    num_classes: int = 0
    class_names: tuple[str, ...] = ()
    loss: Literal["nonsaturating", "hinge"] = "nonsaturating"
    batch_size: int = 64
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    ema: float = 0.999
    bn_batches: int = 50
    steps: int = 5000
    max_seconds: float = 0.0
    clock: Literal["cpu", "wall"] = "cpu"
    seed: int = 0
    threads: int = 1
    resize: Literal["crop", "stretch"] = "crop"
    log_every: int = 100
    sample_every: int = 0
    checkpoint_every: int = 0
    eval_every: int = 0
    work_dir: str = ""
    resume: str = ""

    def validate(self) -> None:
        """Check sizes, widths and budgets."""
        if self.image_size not in (0, *SIZES):
            raise ConfigError(f"image_size must be one of {SIZES} (or 0: from the data), "
                              f"got {self.image_size}")
        if self.channels not in (0, 1, 3):
            raise ConfigError(f"channels must be 1 (grayscale) or 3 (RGB) (or 0: from the "
                              f"data), got {self.channels}")
        for name in ("latent_dim", "g_width", "d_width", "batch_size", "threads"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.g_width % 2 or self.d_width % 2:
            raise ConfigError("g_width and d_width must be even")
        for name in ("steps", "bn_batches", "log_every", "sample_every", "checkpoint_every",
                     "eval_every", "num_classes", "seed"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("lr_g", "lr_d"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.ema < 1:
            raise ConfigError(f"ema must be in [0, 1) (0 = off), got {self.ema}")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ConfigError(f"beta1, beta2 must be in [0, 1), got {self.beta1}, {self.beta2}")
        if self.max_seconds < 0:
            raise ConfigError(f"max_seconds must be >= 0 (0 = no time budget), "
                              f"got {self.max_seconds}")
        if self.steps == 0 and self.max_seconds == 0:
            raise ConfigError("give a budget: steps > 0 or max_seconds > 0")
        if self.class_names and len(self.class_names) != self.num_classes:
            raise ConfigError(f"{len(self.class_names)} class_names for "
                              f"num_classes={self.num_classes}")
        if (self.sample_every or self.checkpoint_every) and not self.work_dir:
            raise ConfigError("sample_every / checkpoint_every need work_dir")
        if self.resume == "auto" and not self.work_dir:
            raise ConfigError("resume=auto needs work_dir (where its checkpoints are found)")


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    """A safetensors file's tensors; a damaged file is a ModelFormatError naming it."""
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own SafetensorError (and OSError)
        raise ModelFormatError(
            f"{str(path)!r} is not a readable safetensors file: {type(exc).__name__}: {exc}"
        ) from None


class GanGenerator(ImageGenerator):
    """A DCGAN image generator (torch): ``fit`` on digits or an image folder, then
    ``generate(n=64, seed=0)``; ``export_onnx`` for the torch-free runtime."""

    name: ClassVar[str] = "gan"
    config_class: ClassVar[type[GeneratorConfig]] = GanConfig
    export_formats: ClassVar[tuple[str, ...]] = ("onnx",)

    def __init__(self, config: GeneratorConfig | None = None, **options: Any) -> None:
        super().__init__(config, **options)
        self.g: DCGANGenerator | None = None
        self.d: DCGANDiscriminator | None = None
        self.history: list[dict[str, float]] = []

    @property
    def cfg(self) -> GanConfig:
        """The config, typed."""
        return self.config_as(GanConfig)

    @property
    def trained(self) -> bool:
        return self.g is not None

    def _build(self) -> None:
        c = self.cfg
        k = c.num_classes if c.conditional else 0
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(c.seed)
            self.g = DCGANGenerator(size=c.image_size, channels=c.channels,
                                    latent_dim=c.latent_dim, width=c.g_width, num_classes=k,
                                    labels=c.g_labels)
            self.d = DCGANDiscriminator(size=c.image_size, channels=c.channels,
                                        width=c.d_width, num_classes=k, labels=c.d_labels)
            self.g.apply(dcgan_init)
            self.d.apply(dcgan_init)

    # -- data -------------------------------------------------------------------
    def _images(self, data: Any, progress: Progress | None = None) -> ImageDataset:
        """The data at the model's size and channels. Before training, an image_size or
        channels of 0 is taken from the data; a reduction is reported on ``progress``."""
        if isinstance(data, (str, Path)) and Path(data).expanduser().is_dir():
            data = ImageFolder(Path(data).expanduser())  # clear errors for image-less folders
        dataset: Dataset = data if isinstance(data, Dataset) else self.dataset(data)
        if not isinstance(dataset, (ImageFolder, ImageDataset)):
            raise ConfigError(f"the gan generator trains on images (digits or an image "
                              f"folder), got {type(dataset).__name__} {dataset.name!r}")
        side, channels = dataset.shape() if isinstance(dataset, ImageFolder) \
            else (dataset.size, dataset.channels)
        c = self.cfg
        if c.image_size == 0 or c.channels == 0:
            fitting = [s for s in SIZES if s <= side] or [SIZES[0]]
            self.config = c.replace(image_size=c.image_size or fitting[-1],
                                    channels=c.channels or channels or 1)
            c = self.cfg
        if progress is not None and side and (c.image_size < side or c.channels < channels):
            kind = {1: "grayscale", 3: "RGB"}
            progress.log(
                f"{dataset.name}: images are {side}x{side} or larger, "
                f"{kind.get(channels, channels)}; training at {c.image_size}x{c.image_size} "
                f"{kind[c.channels]} (image_size: one of {', '.join(map(str, SIZES))}; "
                "set image_size and channels to choose)")
        if isinstance(dataset, ImageFolder):
            return dataset.read(size=c.image_size, channels=c.channels, resize=c.resize)
        return dataset.conformed(size=c.image_size, channels=c.channels)

    # -- training -----------------------------------------------------------------
    def fit(self, data: Any, *, progress: Progress | None = None) -> dict[str, Any]:
        """Train on ``data``: a dataset name (``digits``), an image folder or an ImageDataset.

        Under torchrun each rank trains on its rows of every batch (see ``train.py``);
        rank 0 alone reports progress and writes samples and checkpoints."""
        world = join("cpu")
        progress = (progress or Progress()) if world.main else Progress()
        ds = self._images(data, progress)
        c = self.cfg
        if c.conditional:
            if ds.labels is None or ds.num_classes < 2:
                raise ConfigError(
                    f"conditional=true needs labelled data (class subfolders); {ds.name!r} "
                    "has no labels")
            if c.num_classes not in (0, ds.num_classes):
                raise ConfigError(f"num_classes={c.num_classes} but {ds.name!r} has "
                                  f"{ds.num_classes} classes")
            self.config = c.replace(num_classes=ds.num_classes, class_names=ds.classes)
            c = self.cfg
        self._build()
        assert self.g is not None and self.d is not None
        x = torch.from_numpy(ds.images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
        y = torch.from_numpy(ds.labels) if c.conditional and ds.labels is not None else None
        batch_size = min(c.batch_size, len(ds))  # small data: one batch is all of it
        if batch_size < c.batch_size:
            progress.log(f"{ds.name}: {len(ds)} images, fewer than batch_size={c.batch_size}; "
                         f"training with batches of {batch_size}")
        run_config = {k: v for k, v in c.to_dict().items() if k not in _NOT_RUN_OPTIONS}
        run_config["batch_size"] = batch_size
        world.same("GAN config and data", [run_config, list(x.shape)])
        trainer = Trainer(g=self.g, d=self.d, x=x.contiguous(), y=y, loss=c.loss,
                          batch_size=batch_size, seed=c.seed, lr_g=c.lr_g, lr_d=c.lr_d,
                          betas=(c.beta1, c.beta2), ema=c.ema, world=world,
                          run_config=json.loads(json.dumps(run_config)))
        if trainer.g_ema is not None:
            self.g = trainer.g_ema  # what samples, metrics, save and export use
        resume = resume_path(c.resume, c.work_dir)
        resumed_from = -1
        if resume is not None:
            trainer.load_checkpoint(resume)
            resumed_from = trainer.state.step
            progress.log(f"resumed from {resume} at step {trainer.state.step}")
        work = Path(c.work_dir) if c.work_dir and world.main else None
        every: list[tuple[int, Callable[[Trainer], dict[str, float] | None]]] = []
        if work is not None and c.sample_every:
            every.append((c.sample_every, lambda t: self._sample_grid(
                work / "samples" / f"step_{t.state.step:07d}.png")))
        if work is not None and c.checkpoint_every:
            every.append((c.checkpoint_every, lambda t: self._checkpoint(t, work, progress)))
        if c.eval_every and self._is_digits(ds) and world.main:
            every.append((c.eval_every, lambda t: self._quick_metrics()))
        budget = Budget(max_steps=c.steps or 2**62, max_seconds=c.max_seconds, clock=c.clock)
        cpu0 = time.process_time()
        try:
            with torch_threads(c.threads):
                state = run(trainer, budget=budget, progress=progress, log_every=c.log_every,
                            every=every)
        finally:
            trainer.finish()
        if c.ema > 0 and c.bn_batches > 0:
            self._recalibrate_bn()
        self.g.eval()
        self.d.eval()
        self.history = state.history
        if work is not None:
            trainer.save_checkpoint(work / "checkpoints" / "last.safetensors")
            if self.history:
                plots.loss_curve(self.history, work / "loss_curve.png")
        # train_seconds: the training loop on `clock` (what max_seconds budgets);
        # fit_cpu_seconds: the whole fit in process CPU time.
        self.metrics = {"steps": state.step, "train_seconds": state.train_seconds,
                        "train_clock": c.clock, "batch_size": batch_size,
                        "fit_cpu_seconds": time.process_time() - cpu0, "images": len(ds),
                        "dataset": ds.name, "world_size": world.size}
        if resumed_from >= 0:
            self.metrics["resumed_from_step"] = resumed_from
        if self.history:
            last = self.history[-1]
            self.metrics.update({k: last[k] for k in ("d_loss", "g_loss", "images_per_s")
                                 if k in last})
        return dict(self.metrics)

    @torch.no_grad()
    def _recalibrate_bn(self) -> None:
        """Re-estimate G's BatchNorm statistics as exact averages over ``bn_batches``
        batches of 256 seeded latents (balanced labels), so they match its weights."""
        assert self.g is not None
        c = self.cfg
        bns = [m for m in self.g.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        saved = [m.momentum for m in bns]
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative average
        self.g.train()
        for i in range(c.bn_batches):
            lab = class_labels(256, c.num_classes if c.conditional else 0, None)
            self.g(torch.from_numpy(latents(2**40 + i, 256, c.latent_dim)),
                   None if lab is None else torch.from_numpy(lab))
        for m, momentum in zip(bns, saved, strict=True):
            m.momentum = momentum
        self.g.eval()

    def _checkpoint(self, trainer: Trainer, work: Path, progress: Progress) -> None:
        path = trainer.save_checkpoint(work / "checkpoints" / f"step_{trainer.state.step:07d}"
                                       ".safetensors")
        progress.log(f"checkpoint {path}")

    def _sample_grid(self, path: Path) -> None:
        n = 100 if self.cfg.conditional and self.cfg.num_classes <= 10 else 64
        images, labels = self._sample(0, n)
        _write_images(images, path)

    @staticmethod
    def _is_digits(ds: ImageDataset) -> bool:
        return ds.name.startswith("digits") and ds.images.shape[1:] == (8, 8, 1)

    def _quick_metrics(self) -> dict[str, float]:
        if self.cfg.ema > 0 and self.cfg.bn_batches > 0:
            self._recalibrate_bn()
        report = self.digits_metrics()
        return {k: report[k] for k in ("digits_fid", "class_entropy")}

    # -- generation -------------------------------------------------------------------
    @torch.no_grad()
    def _float_images(self, z: npt.NDArray[np.float32], labels: npt.NDArray[np.int64] | None
                      ) -> npt.NDArray[np.float32]:
        """The generator's raw output (N, C, S, S) in [-1, 1] for latents and labels."""
        assert self.g is not None
        was_training = self.g.training
        self.g.eval()
        outs = []
        for i in range(0, len(z), 1024):
            lab = torch.from_numpy(labels[i:i + 1024]) if labels is not None else None
            outs.append(self.g(torch.from_numpy(z[i:i + 1024]), lab).numpy())
        self.g.train(was_training)
        return np.concatenate(outs).astype(np.float32)

    def _sample(self, seed: int, n: int, labels: tuple[int, ...] | None = None
                ) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64] | None]:
        c = self.cfg
        lab = class_labels(n, c.num_classes if c.conditional else 0, labels)
        return to_uint8(self._float_images(latents(seed, n, c.latent_dim), lab)), lab

    def _generate(self, request: ImageRequest) -> ImageResult:
        assert request.seed is not None
        images, lab = self._sample(request.seed, request.n, request.labels)
        return ImageResult(images=images, request=request,
                           labels=None if lab is None else [int(v) for v in lab],
                           metadata={"class_names": list(self.cfg.class_names)})

    def write_images(self, result: ImageResult, out: str | Path) -> list[Path]:
        """A ``.png`` path: one grid; otherwise a folder with one PNG per image."""
        return _write_images(result.images, out, labels=result.labels)

    # -- metrics -----------------------------------------------------------------------
    def digits_metrics(self, seed: int = 12345) -> dict[str, Any]:
        """The digits quality report (digits-FID etc., see ``metrics.digits_report``)."""
        from . import metrics

        c = self.cfg
        if (c.image_size, c.channels) != (8, 1):
            raise ConfigError("digits metrics need an 8x8 grayscale model")
        train, test = load_digits("train"), load_digits("test")
        return metrics.digits_report(lambda s, n: self._sample(s, n), train=train.images,
                                     heldout=test.images, seed=seed)

    def evaluate(self, data: Any) -> dict[str, Any]:
        """Quality report against ``data``: digits metrics for digits (always against the
        540 held-out digits) and the pixel SWD (x1e3) against ``data`` for any images."""
        from . import metrics

        self.require_trained("evaluate")
        ds = self._images(data)
        report: dict[str, Any] = {}
        if self._is_digits(ds) and (self.cfg.image_size, self.cfg.channels) == (8, 1):
            report.update(self.digits_metrics())
        n = min(len(ds), 2048)
        images, _ = self._sample(54321, n)
        report.update(metrics.sliced_wasserstein(images, ds.images[:n]))
        return report

    # -- bundles -------------------------------------------------------------------------
    def _save_payload(self, directory: Path) -> None:
        assert self.g is not None and self.d is not None
        save_file({k: v.contiguous() for k, v in self.g.state_dict().items()},
                  str(directory / G_FILE))
        save_file({k: v.contiguous() for k, v in self.d.state_dict().items()},
                  str(directory / D_FILE))
        (directory / HISTORY_FILE).write_text(json.dumps(self.history) + "\n", encoding="utf-8")

    def _load_payload(self, directory: Path, manifest: Manifest) -> None:
        self._build()
        assert self.g is not None and self.d is not None
        nets: list[tuple[torch.nn.Module, str]] = [(self.g, G_FILE)]
        if D_FILE in manifest.files:
            nets.append((self.d, D_FILE))
        for net, name in nets:
            weights = _read_weights(manifest.payload(directory, name))
            try:
                net.load_state_dict(weights)
            except RuntimeError as exc:
                raise ModelFormatError(
                    f"bundle {str(directory)!r}: the weights in {name} do not match the config "
                    f"in its manifest: {' '.join(str(exc).split())}") from None
        self.g.eval()
        self.d.eval()
        self.history = []
        if HISTORY_FILE in manifest.files:
            path = manifest.payload(directory, HISTORY_FILE)
            history = read_json(path, what="training history")
            if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
                raise ModelFormatError(
                    f"training history {str(path)!r} must be a JSON list of objects")
            self.history = history

    # -- export ----------------------------------------------------------------------------
    def onnx_bytes(self) -> bytes:
        """The generator as ONNX: inputs ``z`` (N, latent_dim) float32 [and ``label`` (N,)
        int64], output ``image`` (N, C, S, S) in [-1, 1]; dynamic batch."""
        import tempfile

        assert self.g is not None
        self.g.eval()
        conditional = self.cfg.conditional
        z = torch.zeros(2, self.cfg.latent_dim)
        args: tuple[torch.Tensor, ...] = (z, torch.zeros(2, dtype=torch.long)) \
            if conditional else (z,)
        names = ["z", "label"] if conditional else ["z"]
        with tempfile.TemporaryDirectory(prefix="aigc-onnx-") as tmp, \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            target = Path(tmp) / "model.onnx"
            # BatchNorm folded, the stem as one Gemm (see export.py).
            torch.onnx.export(InferenceGenerator(self.g), args, target, dynamo=False,
                              input_names=names,
                              output_names=["image"], opset_version=17,
                              dynamic_axes={n: {0: "batch"} for n in [*names, "image"]})
            return target.read_bytes()

    def _export(self, path: Path, format: str, **options: Any) -> Path:
        if options:
            raise ConfigError(f"{format} export takes no options, got {sorted(options)}")
        self.require_trained("export")
        c = self.cfg
        runtime_cfg = OnnxGanConfig(image_size=c.image_size, channels=c.channels,
                                    latent_dim=c.latent_dim,
                                    num_classes=c.num_classes if c.conditional else 0,
                                    class_names=c.class_names)
        exported = OnnxGanGenerator(runtime_cfg)
        exported.set_model(self.onnx_bytes())
        exported.metrics = {**self.metrics, "exported_from": "gan"}
        exported.adopt_origin(self)
        return exported.save(path)
