"""Image datasets: the built-in 8x8 digits and folders of PNG/JPEG images (numpy + Pillow)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from aigc_engine.plugin_api import ConfigError, Dataset, MissingDependencyError

log = logging.getLogger(__name__)

DATA = Path(__file__).parent / "data"
DIGITS_FILE = DATA / "digits.npz"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
DIGIT_CLASSES = tuple(str(i) for i in range(10))
#: Pillow modes without colour.
GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "F")


class ImageDataset(Dataset):
    """Images as uint8 (N, H, W, C) with optional integer labels (N,) and class names.

    ``split`` records where built-in data came from (``digits``: "train",
    "test" or "all"), so metrics can tell the held-out digits apart.
    """

    modality = "image"

    def __init__(self, *, name: str, images: npt.NDArray[np.uint8],
                 labels: npt.NDArray[np.int64] | None = None,
                 classes: Sequence[str] = (), split: str = "") -> None:
        if images.ndim != 4 or images.dtype != np.uint8:
            raise ConfigError(f"images must be uint8 (N, H, W, C), got {images.dtype} "
                              f"{images.shape}")
        if images.shape[0] == 0:
            raise ConfigError(f"dataset {name!r} holds no images")
        if labels is not None and labels.shape != (images.shape[0],):
            raise ConfigError(f"dataset {name!r}: {labels.shape} labels for "
                              f"{images.shape[0]} images")
        self.name = name
        self.images = images
        self.labels = labels
        self.classes = tuple(classes)
        self.split = split

    @property
    def size(self) -> int:
        """The image side length (images are square)."""
        return int(self.images.shape[1])

    @property
    def channels(self) -> int:
        """1 (grayscale) or 3 (RGB)."""
        return int(self.images.shape[3])

    @property
    def num_classes(self) -> int:
        """How many classes the labels use (0 without labels)."""
        return len(self.classes) if self.labels is not None else 0

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __repr__(self) -> str:
        n, h, w, c = self.images.shape
        return f"<ImageDataset {self.name!r}: {n} images {h}x{w}x{c}, {self.num_classes} classes>"


    def conformed(self, *, size: int, channels: int) -> ImageDataset:
        """This data at ``size`` x ``size`` with ``channels`` channels (Pillow resize,
        grayscale <-> RGB conversion); itself when it already fits."""
        if self.size == size and self.channels == channels:
            return self
        from PIL import Image

        mode = "L" if channels == 1 else "RGB"
        out = []
        for img in self.images:
            im = Image.fromarray(img[:, :, 0] if img.shape[2] == 1 else img)
            im = im.convert(mode).resize((size, size), Image.Resampling.LANCZOS)
            arr = np.asarray(im, dtype=np.uint8)
            out.append(arr[:, :, None] if arr.ndim == 2 else arr)
        return ImageDataset(name=self.name, images=np.stack(out), labels=self.labels,
                            classes=self.classes, split=self.split)


class ImageFolder(Dataset):
    """A folder of images, read when a generator knows its size and channels.

    ``read(size=..., channels=...)`` returns an :class:`ImageDataset`; see
    :func:`load_image_folder`.
    """

    modality = "image"

    def __init__(self, path: str | Path) -> None:
        folder = Path(path)
        if not folder.is_dir():
            raise ConfigError(f"{str(folder)!r} is not a folder of images")
        self.path = folder
        self.name = str(folder)

    def shape(self) -> tuple[int, int]:
        """(smallest side, channels) of the folder's images, from their headers: channels
        is 3 when any image is in colour, else 1. (0, 0) when no image can be opened."""
        from PIL import Image, UnidentifiedImageError

        side, channels = 0, 1
        for file in _image_files(self.path):
            try:
                with Image.open(file) as im:
                    w, h = im.size
                    mode = im.mode
            except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
                continue
            side = min(w, h) if side == 0 else min(side, w, h)
            if mode not in GRAY_MODES:
                channels = 3
        return (side, channels) if side else (0, 0)

    def read(self, *, size: int, channels: int,
             resize: Literal["crop", "stretch"] = "crop") -> ImageDataset:
        """Read the images at ``size`` x ``size`` with 1 (grayscale) or 3 (RGB) channels."""
        return load_image_folder(self.path, size=size, mode="L" if channels == 1 else "RGB",
                                 resize=resize)

    def __repr__(self) -> str:
        return f"<ImageFolder {self.name!r}>"


def _digits_arrays() -> dict[str, npt.NDArray[np.int64]]:
    with np.load(DIGITS_FILE, allow_pickle=False) as data:
        return {k: np.asarray(data[k]).astype(np.int64) for k in data.files}


def digits_pixels(values: npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]:
    """Digits pixel values 0..16 -> uint8 0..255 (rounded)."""
    return np.rint(values.astype(np.float64) * (255.0 / 16.0)).astype(np.uint8)


def load_digits(split: Literal["train", "test", "all"] = "train") -> ImageDataset:
    """The 8x8 digits, as 0..255 grayscale: the 1,257-image train split, the 540
    held-out images, or all 1,797 (scikit-learn's stratified 70/30 split, seed 0)."""
    arrays = _digits_arrays()
    if split == "all":
        idx = np.arange(arrays["labels"].shape[0])
    elif split in ("train", "test"):
        idx = arrays[f"{split}_idx"]
    else:
        raise ConfigError(f"digits split must be 'train', 'test' or 'all', got {split!r}")
    images = digits_pixels(arrays["images"][idx])[:, :, :, None]
    name = "digits" if split == "train" else f"digits-{split}"
    return ImageDataset(name=name, images=images, labels=arrays["labels"][idx],
                        classes=DIGIT_CLASSES, split=split)


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()
                  and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


TEXT_SUFFIXES = (".txt", ".text")


def is_image_folder(path: Path) -> bool:
    """True for a folder holding a file with an image suffix (recursively), and for a
    folder without text files either (so an empty folder gets the image loader's error)."""
    if not path.is_dir():
        return False
    files = [p for p in path.rglob("*") if p.is_file()]
    if any(p.suffix.lower() in IMAGE_SUFFIXES for p in files):
        return True
    return not any(p.suffix.lower() in TEXT_SUFFIXES for p in files)


def load_image_folder(path: Path, *, size: int = 32, mode: Literal["L", "RGB"] = "RGB",
                      resize: Literal["crop", "stretch"] = "crop") -> ImageDataset:
    """Read every PNG/JPEG (and BMP/GIF/WebP) under ``path`` into one dataset.

    Each image is converted to ``mode`` ("L" grayscale or "RGB"; alpha dropped,
    palettes expanded), centre-cropped to a square (``resize="crop"``) or
    stretched (``"stretch"``), and resized to ``size`` x ``size`` (Lanczos).
    Files directly in ``path`` are unlabelled; when every image sits in a
    subfolder, the subfolder names (sorted) are the classes. Unreadable files
    are skipped with a warning naming them; no usable image is an error.
    """
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError as exc:  # pragma: no cover - Pillow is a core dependency
        raise MissingDependencyError("reading image folders", package="pillow") from exc
    folder = Path(path)
    if not folder.is_dir():
        raise ConfigError(f"{str(folder)!r} is not a folder of images")
    if size <= 0:
        raise ConfigError(f"image size must be positive, got {size}")
    files = _image_files(folder)
    if not files:
        raise ConfigError(
            f"folder {str(folder)!r} holds no images (looked for "
            f"{', '.join(IMAGE_SUFFIXES)} files, recursively)"
        )
    arrays: list[npt.NDArray[np.uint8]] = []
    kept: list[Path] = []
    skipped: list[str] = []
    for file in files:
        try:
            with Image.open(file) as im:
                im.load()
                img = im.convert("RGBA").convert(mode) if im.mode in ("P", "LA", "PA") \
                    else im.convert(mode)
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            skipped.append(f"{file} ({type(exc).__name__}: {exc})")
            continue
        if resize == "crop":
            w, h = img.size
            side = min(w, h)
            left, top = (w - side) // 2, (h - side) // 2
            img = img.crop((left, top, left + side, top + side))
        img = img.resize((size, size), Image.Resampling.LANCZOS)
        arr = np.asarray(img, dtype=np.uint8)
        arrays.append(arr[:, :, None] if arr.ndim == 2 else arr)
        kept.append(file)
    if skipped:
        log.warning("skipped %d unreadable image(s) in %s: %s", len(skipped), folder,
                    "; ".join(skipped))
    if not arrays:
        raise ConfigError(
            f"folder {str(folder)!r} has {len(files)} image file(s) but none could be read: "
            + "; ".join(skipped)
        )
    images = np.stack(arrays)
    parents = [f.parent.relative_to(folder) for f in kept]
    labels: npt.NDArray[np.int64] | None = None
    classes: tuple[str, ...] = ()
    if all(p != Path(".") for p in parents):
        tops = [p.parts[0] for p in parents]
        classes = tuple(sorted(set(tops)))
        index = {c: i for i, c in enumerate(classes)}
        labels = np.asarray([index[t] for t in tops], dtype=np.int64)
    log.info("read %d images from %s (%d classes)", len(kept), folder, len(classes))
    return ImageDataset(name=str(folder), images=images, labels=labels, classes=classes)
