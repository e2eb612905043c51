"""The torch-free runtime: exported models run with onnxruntime and numpy only.

Nothing here imports torch, directly or indirectly. ``OnnxGanGenerator.load(path)``
(or ``Engine().load(path)``, through the ``gan-onnx`` generator the gan plugin
registers) runs an exported GAN bundle.
"""

from __future__ import annotations

from .gan import OnnxGanConfig, OnnxGanGenerator
from .images import class_labels, latents, make_grid, save_png, to_uint8, write_images

__all__ = [
    "OnnxGanConfig",
    "OnnxGanGenerator",
    "class_labels",
    "latents",
    "make_grid",
    "save_png",
    "to_uint8",
    "write_images",
]
