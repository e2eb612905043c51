"""The exported GAN generator (``gan-onnx``): onnxruntime + numpy, never torch.

An exported bundle holds ``model.onnx`` (inputs ``z`` and, for conditional
models, ``label``; output ``image`` (N, C, S, S) in [-1, 1]) and a manifest
naming the generator ``gan-onnx``, which the gan plugin registers with this
class as its factory. Latents come from :func:`~aigc_engine.runtime.latents`,
as in the torch generator, so one seed gives the same images in both.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from ..bundle import Manifest
from ..config import GeneratorConfig
from ..errors import ConfigError, MissingDependencyError, ModelFormatError
from ..generator import ImageGenerator, ImageRequest, ImageResult
from .images import class_labels, latents, to_uint8, write_images

log = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"


@dataclasses.dataclass(frozen=True)
class OnnxGanConfig(GeneratorConfig):
    """What the runtime needs to feed an exported GAN generator.

    ``threads``: onnxruntime intra-op threads (0 = onnxruntime's default).
    """

    image_size: int = 8
    channels: int = 1
    latent_dim: int = 64
    num_classes: int = 0
    class_names: tuple[str, ...] = ()
    threads: int = 1

    def validate(self) -> None:
        """Positive sizes; class names match the class count."""
        for name in ("image_size", "channels", "latent_dim"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.num_classes < 0 or self.threads < 0:
            raise ConfigError("num_classes and threads must be >= 0")
        if self.class_names and len(self.class_names) != self.num_classes:
            raise ConfigError(f"{len(self.class_names)} class_names for "
                              f"num_classes={self.num_classes}")


class OnnxGanGenerator(ImageGenerator):
    """Runs an exported GAN generator with onnxruntime (CPUExecutionProvider)."""

    name: ClassVar[str] = "gan-onnx"
    config_class: ClassVar[type[GeneratorConfig]] = OnnxGanConfig

    def __init__(self, config: GeneratorConfig | None = None, **options: Any) -> None:
        super().__init__(config, **options)
        self._model: bytes | None = None
        self._session: Any = None

    @property
    def cfg(self) -> OnnxGanConfig:
        """The config, typed."""
        return self.config_as(OnnxGanConfig)

    @property
    def trained(self) -> bool:
        return self._model is not None

    def set_model(self, model: bytes) -> None:
        """Use these ONNX model bytes (the exporter calls this before ``save``)."""
        self._model = model
        self._session = None

    def _get_session(self) -> Any:
        if self._session is None:
            try:
                import onnxruntime as ort  # type: ignore[import-untyped]
            except ImportError as exc:
                raise MissingDependencyError("running exported models",
                                             package="onnxruntime") from exc
            options = ort.SessionOptions()
            options.intra_op_num_threads = self.cfg.threads
            options.inter_op_num_threads = 1
            # All graph rewrites, including the NCHWc layout of the convolutions.
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            try:
                self._session = ort.InferenceSession(self._model, sess_options=options,
                                                     providers=["CPUExecutionProvider"])
            except Exception as exc:  # onnxruntime raises its own exception types
                raise ModelFormatError(f"model.onnx cannot be loaded: {exc}") from None
        return self._session

    def run(self, z: npt.NDArray[np.float32], labels: npt.NDArray[np.int64] | None = None
            ) -> npt.NDArray[np.float32]:
        """The raw model output (N, C, S, S) in [-1, 1] for latents (and labels)."""
        self.require_trained("run")
        feeds: dict[str, Any] = {"z": np.ascontiguousarray(z, dtype=np.float32)}
        if self.cfg.num_classes > 0:
            if labels is None:
                raise ConfigError("a conditional model needs labels")
            feeds["label"] = np.ascontiguousarray(labels, dtype=np.int64)
        out = self._get_session().run(["image"], feeds)[0]
        return np.asarray(out, dtype=np.float32)

    def _generate(self, request: ImageRequest) -> ImageResult:
        assert request.seed is not None
        c = self.cfg
        lab = class_labels(request.n, c.num_classes, request.labels)
        images = to_uint8(self.run(latents(request.seed, request.n, c.latent_dim), lab))
        return ImageResult(images=images, request=request,
                           labels=None if lab is None else [int(v) for v in lab],
                           metadata={"class_names": list(c.class_names)})

    def write_images(self, result: ImageResult, out: str | Path) -> list[Path]:
        """A ``.png`` path: one grid; otherwise a folder with one PNG per image."""
        return write_images(result.images, out, labels=result.labels)

    def _save_payload(self, directory: Path) -> None:
        assert self._model is not None
        (directory / MODEL_FILE).write_bytes(self._model)

    def _load_payload(self, directory: Path, manifest: Manifest) -> None:
        path = manifest.payload(directory, MODEL_FILE)
        self.set_model(path.read_bytes())
        self._check_graph(path)

    def _check_graph(self, path: Path) -> None:
        """The graph's inputs and output must be what the manifest's config says."""
        c = self.cfg
        session = self._get_session()
        inputs = {i.name: i.shape for i in session.get_inputs()}
        outputs = {o.name: o.shape for o in session.get_outputs()}
        want_inputs = {"z", "label"} if c.num_classes > 0 else {"z"}
        problems = []
        if set(inputs) != want_inputs:
            problems.append(f"inputs {sorted(inputs)}, the config implies {sorted(want_inputs)}")
        elif inputs["z"][1:] != [c.latent_dim]:
            problems.append(f"latent input of shape {inputs['z']}, the config says "
                            f"latent_dim={c.latent_dim}")
        want = [c.channels, c.image_size, c.image_size]
        if "image" not in outputs:
            problems.append(f"outputs {sorted(outputs)}, expected 'image'")
        elif outputs["image"][1:] != want:
            problems.append(f"images of shape {outputs['image'][1:]}, the config says "
                            f"{want} (channels, size, size)")
        if problems:
            raise ModelFormatError(
                f"{str(path)!r} does not match the config in its manifest: "
                + "; ".join(problems))
