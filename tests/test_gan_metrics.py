"""digits-FID and the other metrics: exact values on known inputs, pinned reference points."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("torch")

from aigc_engine.plugins.gan import metrics  # noqa: E402
from aigc_engine.plugins.gan.datasets import load_digits  # noqa: E402


def test_frechet_distance_closed_form() -> None:
    # 1-d: (m1 - m2)^2 + s1 + s2 - 2 sqrt(s1 s2) = 1 + 1 + 4 - 4 = 2
    one = metrics.frechet_distance(np.array([0.0]), np.array([[1.0]]), np.array([1.0]),
                                   np.array([[4.0]]))
    assert one == pytest.approx(2.0, abs=1e-12)
    rng = np.random.Generator(np.random.Philox(0))
    a = rng.standard_normal((200, 5))
    mu, cov = metrics.gaussian(a)
    assert metrics.frechet_distance(mu, cov, mu, cov) == pytest.approx(0.0, abs=1e-9)
    # diagonal covariances: sum of (sqrt(s1) - sqrt(s2))^2
    s1, s2 = np.diag([1.0, 4.0, 9.0]), np.diag([4.0, 4.0, 1.0])
    fd = metrics.frechet_distance(np.zeros(3), s1, np.zeros(3), s2)
    assert fd == pytest.approx(1.0 + 0.0 + 4.0, abs=1e-9)
    # a singular covariance (one repeated point) is handled
    assert math.isfinite(metrics.frechet_distance(np.zeros(3), np.zeros((3, 3)), np.ones(3),
                                                  np.eye(3)))


def test_precision_recall_and_entropy() -> None:
    rng = np.random.Generator(np.random.Philox(1))
    real = rng.standard_normal((300, 4))
    p, r = metrics.precision_recall(real, real.copy())
    assert (p, r) == (1.0, 1.0)
    far = real + 100.0
    assert metrics.precision_recall(real, far) == (0.0, 0.0)
    collapsed = np.repeat(real[:1], 300, axis=0)
    p, r = metrics.precision_recall(real, collapsed)
    assert p == 1.0 and r < 0.05
    assert metrics.entropy(np.arange(1000) % 10) == pytest.approx(math.log(10))
    assert metrics.entropy(np.zeros(50, dtype=np.int64)) == 0.0


def test_pinned_classifier_and_reference_points() -> None:
    train, test = load_digits("train"), load_digits("test")
    _, probs = metrics.classify(test.images)
    accuracy = float((probs.argmax(1) == test.labels).mean())
    assert accuracy == pytest.approx(0.9852, abs=1e-3)  # the shipped weights
    ref = metrics.reference_points(train.images, test.images)
    # the scale documented in docs/gan.md
    assert ref["train_split"] == pytest.approx(3.79, abs=0.02)
    assert ref["uniform_noise"] > 300
    assert ref["one_image_repeated"] > 1000


def test_report_flags_copying_and_swd() -> None:
    train, test = load_digits("train"), load_digits("test")

    def copy_train(seed: int, n: int) -> tuple[np.ndarray, None]:  # type: ignore[type-arg]
        rng = np.random.Generator(np.random.Philox(seed))
        return train.images[rng.choice(len(train), n, replace=False)], None

    report = metrics.digits_report(copy_train, train=train.images, heldout=test.images)
    assert report["digits_fid"] == pytest.approx(3.72, abs=0.05)
    assert report["nn_train_ratio"] == 0.0 and report["copied_share"] == 1.0
    assert report["class_entropy"] > 2.28 and report["confident_share"] > 0.95
    same = metrics.sliced_wasserstein(train.images[:500], train.images[500:1000])
    noise = metrics.sliced_wasserstein(
        train.images[:500], np.random.Generator(np.random.Philox(2)).integers(
            0, 256, (500, 8, 8, 1), dtype=np.uint8))
    assert same["swd"] * 5 < noise["swd"]
