"""The gan generator: training, reproducibility, resume, generation, bundles, CLI, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from click.testing import CliRunner  # noqa: E402

from aigc_engine import ConfigError, Engine, ImageGenerator, UnsupportedOperationError  # noqa: E402
from aigc_engine.plugins.gan.datasets import ImageDataset, load_digits  # noqa: E402

TINY = {"g_width": 8, "d_width": 8, "latent_dim": 16, "batch_size": 32, "log_every": 10,
        "bn_batches": 4}


def make(engine: Engine, **options: Any) -> Any:
    return engine.create("gan", **{**TINY, **options})


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(plugins=["gan"])


@pytest.fixture(scope="module")
def uncond(engine: Engine) -> Any:
    gen = make(engine, steps=30, seed=3)
    gen.fit("digits")
    return gen


@pytest.fixture(scope="module")
def cond(engine: Engine) -> Any:
    gen = make(engine, steps=30, seed=4, conditional=True)
    gen.fit("digits")
    return gen


def _state(gen: Any) -> dict[str, Any]:
    return {k: v.clone() for k, v in gen.g.state_dict().items()}


def test_config_validation(engine: Engine) -> None:
    with pytest.raises(ConfigError, match="image_size must be one of"):
        make(engine, image_size=12)
    with pytest.raises(ConfigError, match="channels"):
        make(engine, channels=2)
    with pytest.raises(ConfigError, match="expected one of"):
        make(engine, loss="wasserstein")
    with pytest.raises(ConfigError, match="need work_dir"):
        make(engine, sample_every=10)


def test_fit_reports_progress_and_is_reproducible(engine: Engine, uncond: Any) -> None:
    assert uncond.metrics["steps"] == 30 and uncond.metrics["images"] == 1257
    assert [h["step"] for h in uncond.history] == [10.0, 20.0, 30.0]
    assert all(h["images_per_s"] > 0 and np.isfinite(h["d_loss"]) for h in uncond.history)
    again = make(engine, steps=30, seed=3)
    again.fit("digits")
    for k, v in _state(uncond).items():
        assert torch.equal(v, again.g.state_dict()[k]), k
    other = make(engine, steps=30, seed=5)
    other.fit("digits")
    assert not torch.equal(other.g.stem[0].weight, uncond.g.stem[0].weight)


def test_hinge_loss_and_time_budget(engine: Engine) -> None:
    gen = make(engine, loss="hinge", steps=0, max_seconds=0.5, clock="wall")
    metrics = gen.fit("digits")
    assert 0 < metrics["steps"] and 0.5 <= metrics["train_seconds"] < 5.0


def test_generate_seeded(uncond: Any) -> None:
    a = uncond.generate(n=6, seed=11)
    assert a.images.shape == (6, 8, 8, 1) and a.images.dtype == np.uint8
    assert a.labels is None and a.metadata["seed"] == 11
    b = uncond.generate(n=2, seed=11)
    assert np.array_equal(a.images[:2], b.images)  # a prefix of the same latents
    c = uncond.generate(n=6, seed=12)
    assert not np.array_equal(a.images, c.images)
    assert uncond.generate(n=1).metadata["seed"] is not None


def test_generate_bad_requests(uncond: Any, cond: Any) -> None:
    with pytest.raises(ConfigError, match="n must be a positive integer"):
        uncond.generate(n=0)
    with pytest.raises(ConfigError, match="n must be a positive integer"):
        uncond.generate(n=-3)
    with pytest.raises(ConfigError, match="unconditional"):
        uncond.generate(n=2, labels=(1, 2))
    with pytest.raises(ConfigError, match="out of range.*10 classes"):
        cond.generate(n=1, labels=(10,))
    with pytest.raises(ConfigError, match="labels has 1 entries for n=2"):
        cond.generate(n=2, labels=(1,))


def test_conditional_labels(cond: Any) -> None:
    assert cond.cfg.num_classes == 10 and cond.cfg.class_names[7] == "7"
    res = cond.generate(n=12, seed=0)
    assert res.labels == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    sevens = cond.generate(n=3, seed=0, labels=(7, 7, 7))
    assert sevens.labels == [7, 7, 7]
    assert not np.array_equal(sevens.images[0], res.images[0])


def test_conditional_needs_labels(engine: Engine, tmp_path: Path) -> None:
    Image.new("L", (8, 8), 9).save(tmp_path / "a.png")
    Image.new("L", (8, 8), 200).save(tmp_path / "b.png")
    with pytest.raises(ConfigError, match="needs labelled data"):
        make(engine, conditional=True, steps=1, batch_size=2).fit(str(tmp_path))


def test_fit_on_image_folder_rgb_16(engine: Engine, tmp_path: Path) -> None:
    rng = np.random.Generator(np.random.Philox(0))
    for i in range(12):
        sub = tmp_path / ("red" if i % 2 else "blue")
        sub.mkdir(exist_ok=True)
        size = (20 + i, 16 + 2 * i)  # mixed sizes
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(
            sub / f"{i}.png")
    gen = make(engine, image_size=16, channels=3, steps=3, batch_size=4, conditional=True)
    gen.fit(str(tmp_path))
    assert gen.cfg.class_names == ("blue", "red")
    res = gen.generate(n=4, seed=0, labels=(1, 1, 0, 0))
    assert res.images.shape == (4, 16, 16, 3)
    report = gen.evaluate(str(tmp_path))
    assert "digits_fid" not in report and report["swd"] > 0
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="holds no images"):
        make(engine, steps=1).fit(str(empty))


@pytest.mark.parametrize("size", [8, 16, 32, 64])
def test_all_sizes(engine: Engine, size: int) -> None:
    gen = make(engine, image_size=size, steps=1, batch_size=4)
    gen.fit(ImageDataset(name="tiny", images=np.zeros((8, size, size, 1), dtype=np.uint8)))
    assert gen.generate(n=2, seed=0).images.shape == (2, size, size, 1)


def test_save_load_roundtrip(engine: Engine, cond: Any, tmp_path: Path) -> None:
    path = cond.save(tmp_path / "bundle")
    assert (path / "generator.safetensors").is_file()
    loaded = engine.load(path)
    assert isinstance(loaded, ImageGenerator) and loaded.name == "gan"
    a = cond.generate(n=10, seed=9)
    b = loaded.generate(n=10, seed=9)
    assert np.array_equal(a.images, b.images) and a.labels == b.labels
    assert loaded.history == cond.history  # type: ignore[attr-defined]


def test_untrained_errors(engine: Engine, tmp_path: Path) -> None:
    gen = make(engine)
    with pytest.raises(UnsupportedOperationError, match="untrained"):
        gen.generate(n=1)
    with pytest.raises(UnsupportedOperationError, match="untrained"):
        gen.export_onnx(tmp_path / "x")


def test_checkpoints_samples_and_exact_resume(engine: Engine, tmp_path: Path) -> None:
    work = tmp_path / "work"
    straight = make(engine, steps=20, seed=8, work_dir=str(work), checkpoint_every=10,
                    sample_every=10)
    straight.fit("digits")
    ckpt = work / "checkpoints" / "step_0000010.safetensors"
    assert ckpt.is_file() and (work / "checkpoints" / "last.safetensors").is_file()
    assert (work / "samples" / "step_0000020.png").is_file()
    assert Image.open(work / "loss_curve.png").size == (640, 360)
    resumed = make(engine, steps=20, seed=8, resume=str(ckpt))
    resumed.fit("digits")
    assert resumed.metrics["steps"] == 20
    for k, v in straight.g.state_dict().items():
        assert torch.equal(v, resumed.g.state_dict()[k]), k
    assert [h["step"] for h in resumed.history] == [10.0, 20.0]


def test_write_images(uncond: Any, tmp_path: Path) -> None:
    res = uncond.generate(n=16, seed=0)
    grid = uncond.write_images(res, tmp_path / "grid.png")
    assert Image.open(grid[0]).size == (4 * 33 + 1, 4 * 33 + 1)  # 4x4 tiles, 8 px x4, 1 px pad
    files = uncond.write_images(res, tmp_path / "each")
    assert len(files) == 16 and Image.open(files[3]).size == (8, 8)
    assert np.array_equal(np.asarray(Image.open(files[3]))[:, :, None], res.images[3])


def test_evaluate_digits_report(uncond: Any) -> None:
    report = uncond.evaluate("digits-test")
    for key in ("digits_fid", "class_entropy", "confident_share", "precision", "recall",
                "nn_train_ratio", "copied_share", "swd"):
        assert np.isfinite(report[key]), key
    assert 0 <= report["class_entropy"] <= np.log(10) + 1e-9
    assert report["digits_fid"] > 3.7  # 30 tiny steps are far from the real-data floor


def test_cli_train_generate(tmp_path: Path) -> None:
    from aigc_engine import cli as cli_mod

    runner = CliRunner()
    bundle = tmp_path / "b"
    res = runner.invoke(cli_mod.cli, ["train", "gan", "--data", "digits", "--set", "steps=5",
                                      "--set", "g_width=8", "--set", "d_width=8",
                                      "--set", "conditional=true", "-o", str(bundle)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli_mod.cli, ["generate", str(bundle), "-n", "4", "--label", "3",
                                      "--seed", "1", "--out", str(tmp_path / "g.png")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "g.png").is_file()
    res = runner.invoke(cli_mod.cli, ["generate", str(bundle), "-n", "0",
                                      "--out", str(tmp_path / "h.png")])
    assert res.exit_code == 2 and "Invalid value for '-n'" in res.output
    empty = tmp_path / "empty"
    empty.mkdir()
    res = runner.invoke(cli_mod.cli, ["train", "gan", "--data", str(empty), "--set", "steps=1",
                                      "-o", str(tmp_path / "c")])
    assert res.exit_code == 1 and "holds no images" in res.output


def test_digits_classes_fixture() -> None:
    assert load_digits("test").classes == tuple("0123456789")


@pytest.mark.parametrize("d_labels", ["all", "projection"])
def test_discriminator_label_modes(engine: Engine, d_labels: str) -> None:
    gen = make(engine, steps=2, conditional=True, d_labels=d_labels)
    gen.fit("digits")
    assert gen.d(torch.zeros(3, 1, 8, 8), torch.tensor([0, 1, 2])).shape == (3,)
    assert gen.generate(n=2, seed=0, labels=(4, 5)).labels == [4, 5]


# -- image folders: size, channels and batch from the data (issue 14) ------------------------

class _Log:
    def __init__(self) -> None:
        from aigc_engine.plugin_api import Progress

        class Recording(Progress):
            def __init__(self, lines: list[str]) -> None:
                self.lines = lines

            def log(self, message: str) -> None:
                self.lines.append(message)

        self.lines: list[str] = []
        self.progress = Recording(self.lines)


def _folder(root: Path, n: int, side: int, mode: str) -> Path:
    rng = np.random.Generator(np.random.Philox(1))
    root.mkdir()
    for i in range(n):
        shape = (side, side, 3) if mode == "RGB" else (side, side)
        Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode=mode).save(
            root / f"{i:03d}.png")
    return root


def test_a_small_rgb_folder_trains_at_its_own_size_with_the_default_batch(
        engine: Engine, tmp_path: Path) -> None:
    folder = _folder(tmp_path / "rgb16", 50, 16, "RGB")
    gen = engine.create("gan", g_width=8, d_width=8, latent_dim=16, steps=2, bn_batches=1,
                        log_every=0)
    assert gen.cfg.batch_size == 64 and gen.cfg.image_size == 0 and gen.cfg.channels == 0
    log = _Log()
    metrics = gen.fit(str(folder), progress=log.progress)
    assert (gen.cfg.image_size, gen.cfg.channels) == (16, 3)
    assert metrics["batch_size"] == 50
    assert log.lines == [f"{folder}: 50 images, fewer than batch_size=64; training with "
                         "batches of 50"]
    assert gen.generate(n=3, seed=0).images.shape == (3, 16, 16, 3)


def test_a_reduction_of_the_data_is_reported(engine: Engine, tmp_path: Path) -> None:
    folder = _folder(tmp_path / "gray20", 8, 20, "L")
    gen = make(engine, steps=1, batch_size=4)
    log = _Log()
    gen.fit(str(folder), progress=log.progress)
    assert (gen.cfg.image_size, gen.cfg.channels) == (16, 1)
    assert log.lines == [f"{folder}: images are 20x20 or larger, grayscale; training at 16x16 "
                         "grayscale (image_size: one of 8, 16, 32, 64; set image_size and "
                         "channels to choose)"]
    rgb = _folder(tmp_path / "rgb16", 8, 16, "RGB")
    explicit = make(engine, steps=1, batch_size=4, image_size=8, channels=1)
    log = _Log()
    explicit.fit(str(rgb), progress=log.progress)
    assert log.lines == [f"{rgb}: images are 16x16 or larger, RGB; training at 8x8 grayscale "
                         "(image_size: one of 8, 16, 32, 64; set image_size and channels to "
                         "choose)"]


def test_digits_still_train_at_8x8_grayscale_by_default(uncond: Any) -> None:
    assert (uncond.cfg.image_size, uncond.cfg.channels) == (8, 1)
