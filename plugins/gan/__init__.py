"""Built-in plugin: DCGAN image generation (``gan``) and its torch-free export (``gan-onnx``).

This module stays light: no torch, no numpy at import. The generator classes
are named as ``"module:Class"`` strings and imported on first use; ``gan-onnx``
lives in the torch-free :mod:`aigc_engine.runtime`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from aigc_engine.plugin_api import DatasetSpec, GeneratorSpec, hookimpl


@hookimpl
def aigc_register_generators(register: Callable[[GeneratorSpec], None]) -> None:
    """``gan`` (DCGAN, torch) and ``gan-onnx`` (exported bundles, onnxruntime)."""
    register(GeneratorSpec(
        name="gan",
        modality="image",
        factory="aigc_engine.plugins.gan.model:GanGenerator",
        description="DCGAN images (8-64 px, optional class-conditional), digits-FID; torch",
    ))
    register(GeneratorSpec(
        name="gan-onnx",
        modality="image",
        factory="aigc_engine.runtime.gan:OnnxGanGenerator",
        description="An exported gan bundle run with onnxruntime + numpy (no torch)",
    ))


def _digits(split: str) -> Callable[[], Any]:
    def load() -> Any:
        from .datasets import load_digits

        return load_digits(split)  # type: ignore[arg-type]
    return load


def _folder(path: Path) -> Any:
    from .datasets import ImageFolder

    return ImageFolder(path)


def _is_image_folder(path: Path) -> bool:
    from .datasets import is_image_folder

    return is_image_folder(path)


@hookimpl
def aigc_register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    """``digits`` (train split), ``digits-test``, ``digits-all`` and image folders."""
    register(DatasetSpec(
        name="digits", modality="image", loader=_digits("train"),
        description="8x8 handwritten digits, the 1,257-image train split (UCI/scikit-learn)"))
    register(DatasetSpec(
        name="digits-test", modality="image", loader=_digits("test"),
        description="the 540 held-out 8x8 digits (what digits-FID compares against)"))
    register(DatasetSpec(
        name="digits-all", modality="image", loader=_digits("all"),
        description="all 1,797 8x8 handwritten digits with labels"))
    register(DatasetSpec(
        name="image-folder", modality="image", loader=_folder, matches=_is_image_folder,
        description="a folder of PNG/JPEG images; subfolders = class labels"))
