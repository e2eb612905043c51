"""Image helpers shared by the GAN plugin and the torch-free runtime (numpy + Pillow).

Latent vectors come from :func:`latents`, one seeded numpy Philox generator,
so a torch model and its ONNX export see the same inputs for the same seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ..errors import ConfigError, MissingDependencyError

__all__ = ["class_labels", "latents", "make_grid", "save_png", "to_uint8", "write_images"]


def latents(seed: int, n: int, dim: int) -> npt.NDArray[np.float32]:
    """``n`` standard-normal latent vectors of size ``dim`` for ``seed`` (float32).

    Drawn row by row from ``numpy.random.Generator(Philox(seed))``, so the first
    rows of a larger request equal a smaller request with the same seed.
    """
    rng = np.random.Generator(np.random.Philox(seed))
    return rng.standard_normal((n, dim), dtype=np.float32)


def class_labels(n: int, num_classes: int, labels: Sequence[int] | None
                 ) -> npt.NDArray[np.int64] | None:
    """Labels for a request: given ones checked, else ``0, 1, ..., K-1, 0, ...``.

    Returns None for an unconditional model (``num_classes == 0``); raises
    :class:`ConfigError` when labels are given to one or are out of range.
    """
    if num_classes <= 0:
        if labels is not None:
            raise ConfigError(
                "this GAN is unconditional (trained without class labels): it cannot generate "
                "a requested label; drop labels / --label, or train with conditional=true on "
                "labelled data"
            )
        return None
    if labels is None:
        return np.arange(n, dtype=np.int64) % num_classes
    out = np.asarray(list(labels), dtype=np.int64)
    if out.shape != (n,):
        raise ConfigError(f"labels has {out.size} entries for n={n} images")
    bad = out[(out < 0) | (out >= num_classes)]
    if bad.size:
        raise ConfigError(
            f"label {int(bad[0])} is out of range: this model has {num_classes} classes "
            f"(0..{num_classes - 1})"
        )
    return out


def to_uint8(x: npt.NDArray[np.floating]) -> npt.NDArray[np.uint8]:
    """Generator output (N, C, H, W) in [-1, 1] -> uint8 images (N, H, W, C)."""
    if x.ndim != 4:
        raise ConfigError(f"expected a (N, C, H, W) array, got shape {x.shape}")
    y = np.clip((x.astype(np.float32) + 1.0) * 127.5, 0.0, 255.0)
    out: npt.NDArray[np.uint8] = np.rint(y).astype(np.uint8).transpose(0, 2, 3, 1).copy()
    return out


def make_grid(images: npt.NDArray[np.uint8], *, ncols: int | None = None, pad: int = 1,
              scale: int = 1) -> npt.NDArray[np.uint8]:
    """Tile (N, H, W, C) uint8 images into one (rows*H', cols*W', C) image.

    ``pad`` pixels of black between tiles; ``scale`` enlarges each pixel
    (nearest neighbour), handy for 8x8 digits.
    """
    if images.ndim != 4 or images.shape[0] == 0:
        raise ConfigError(f"expected a non-empty (N, H, W, C) array, got shape {images.shape}")
    if scale > 1:
        images = images.repeat(scale, axis=1).repeat(scale, axis=2)
    n, h, w, c = images.shape
    cols = ncols or int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / cols))
    grid = np.zeros((rows * (h + pad) + pad, cols * (w + pad) + pad, c), dtype=np.uint8)
    for i in range(n):
        r, q = divmod(i, cols)
        y0, x0 = pad + r * (h + pad), pad + q * (w + pad)
        grid[y0:y0 + h, x0:x0 + w] = images[i]
    return grid


def save_png(image: npt.NDArray[np.uint8], path: str | Path) -> Path:
    """Write one (H, W, C) uint8 image (C = 1 or 3) as PNG with Pillow."""
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - Pillow is a core dependency
        raise MissingDependencyError("writing PNG images", package="pillow") from exc
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    arr = image[:, :, 0] if image.shape[2] == 1 else image
    Image.fromarray(np.ascontiguousarray(arr), mode="L" if arr.ndim == 2 else "RGB").save(target)
    return target


def write_images(images: npt.NDArray[np.uint8], out: str | Path, *,
                 labels: Sequence[int] | None = None, scale: int | None = None) -> list[Path]:
    """Write images: a path ending in ``.png`` gets one grid, anything else is a folder
    of ``00000.png``, ``00001.png``... (``00000_label3.png`` when labels are known).

    Grids of small images are enlarged (``scale`` defaults to 4 for images under
    32 pixels) so they can be seen; single files keep the model's size.
    """
    target = Path(out)
    if target.suffix.lower() == ".png":
        if scale is None:
            scale = 4 if images.shape[1] < 32 else 1
        return [save_png(make_grid(images, scale=scale), target)]
    if target.exists() and not target.is_dir():
        raise ConfigError(f"--out {str(target)!r} is a file that is not .png; give a .png "
                          "path for a grid or a folder for one file per image")
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for i, img in enumerate(images):
        suffix = f"_label{labels[i]}" if labels is not None else ""
        written.append(save_png(img, target / f"{i:05d}{suffix}.png"))
    return written
