"""The gan plugin's datasets: built-in digits and image folders (no torch needed)."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aigc_engine import ConfigError, Engine
from aigc_engine.plugins.gan.datasets import (
    ImageDataset,
    ImageFolder,
    is_image_folder,
    load_digits,
    load_image_folder,
)


def test_digits_splits() -> None:
    train, test, full = load_digits("train"), load_digits("test"), load_digits("all")
    assert train.images.shape == (1257, 8, 8, 1) and train.images.dtype == np.uint8
    assert test.images.shape == (540, 8, 8, 1)
    assert full.images.shape == (1797, 8, 8, 1)
    assert full.images.max() == 255 and full.images.min() == 0
    assert train.num_classes == 10 and train.classes[3] == "3"
    # stratified: 30% of each class is held out (scikit-learn's split)
    counts = np.bincount(test.labels, minlength=10)  # type: ignore[arg-type]
    assert counts.tolist() == [54, 55, 53, 55, 54, 55, 54, 54, 52, 54]
    # the splits partition the data set
    together = np.concatenate([train.images, test.images]).reshape(1797, -1)
    assert len({row.tobytes() for row in together}) == len(
        {row.tobytes() for row in full.images.reshape(1797, -1)})


def test_named_datasets_through_engine() -> None:
    engine = Engine(plugins=["gan"])
    ds = engine.dataset("digits", modality="image")
    assert isinstance(ds, ImageDataset) and len(ds) == 1257
    assert len(engine.dataset("digits-test")) == 540  # type: ignore[arg-type]


def _save(path: Path, size: tuple[int, int], mode: str, colour: int | tuple[int, ...]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path)


def test_image_folder_mixed_sizes_modes_and_labels(tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    _save(tmp_path / "cats" / "a.png", (10, 12), "RGB", (255, 0, 0))
    _save(tmp_path / "cats" / "b.jpg", (40, 20), "L", 128)
    _save(tmp_path / "dogs" / "c.png", (16, 16), "RGBA", (0, 255, 0, 128))
    _save(tmp_path / "dogs" / "d.gif", (7, 9), "P", 3)
    (tmp_path / "dogs" / "broken.png").write_bytes(b"\x89PNG not really")
    (tmp_path / "notes.txt").write_text("not an image")
    assert is_image_folder(tmp_path)
    with caplog.at_level(logging.WARNING):
        ds = load_image_folder(tmp_path, size=16, mode="RGB")
    assert "broken.png" in caplog.text
    assert ds.images.shape == (4, 16, 16, 3)
    assert ds.classes == ("cats", "dogs")
    assert ds.labels is not None and ds.labels.tolist() == [0, 0, 1, 1]
    assert ds.images[0, 8, 8].tolist() == [255, 0, 0]
    assert ds.images[1, 8, 8].tolist() == [128, 128, 128]
    gray = ImageFolder(tmp_path).read(size=8, channels=1)
    assert gray.images.shape == (4, 8, 8, 1)
    # through the engine, a folder path resolves to the image-folder dataset
    assert isinstance(Engine(plugins=["gan"]).dataset(str(tmp_path), modality="image"),
                      ImageFolder)


def test_image_folder_without_subfolders_is_unlabelled(tmp_path: Path) -> None:
    _save(tmp_path / "x.png", (8, 8), "L", 0)
    _save(tmp_path / "sub" / "y.png", (8, 8), "L", 255)
    ds = load_image_folder(tmp_path, size=8, mode="L")
    assert ds.labels is None and ds.num_classes == 0 and len(ds) == 2


def test_bad_folders(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="holds no images"):
        load_image_folder(empty)
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "a.txt").write_text("hello")
    with pytest.raises(ConfigError, match="holds no images"):
        ImageFolder(texts).read(size=8, channels=1)
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "bad.png").write_bytes(b"garbage")
    with pytest.raises(ConfigError, match="none could be read.*bad.png"):
        load_image_folder(corrupt)
    with pytest.raises(ConfigError, match="not a folder"):
        ImageFolder(tmp_path / "missing")


def test_plugin_import_stays_light() -> None:
    code = ("import sys; from aigc_engine import Engine; e = Engine(); "
            "names = [g.name for g in e.list_generators()]; "
            "import aigc_engine.plugins.gan, aigc_engine.runtime; "
            "e.dataset('digits'); "
            "print(sorted(names), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert "'gan', 'gan-onnx'" in out
    assert out.strip().endswith("False")
