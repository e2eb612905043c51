"""Image quality metrics: digits-FID and friends (pinned classifier), and a pixel-space SWD.

digits-FID: the Fréchet distance between Gaussian fits of 64-d features (the
penultimate layer of a small CNN, before its ReLU) of generated images and of
the 540 held-out digits, averaged over 5 independent draws of 540 generated
images. The classifier was trained once by ``scripts/train_digits_classifier.py``
on the 1,257-image train split; its weights ship with the plugin
(``data/digits_classifier.safetensors``), so the metric means the same thing in
every run. See docs/gan.md for the scale.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

CLASSIFIER_FILE = Path(__file__).parent / "data" / "digits_classifier.safetensors"
FID_SAMPLES = 540
FID_DRAWS = 5
PR_K = 3
CONFIDENT = 0.9

F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]


class DigitsClassifier(nn.Module):
    """A small CNN for 8x8 digits in [0, 1]; ``features`` is the 64-d penultimate layer."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.fc = nn.Linear(64 * 2 * 2, 64)
        self.head = nn.Linear(64, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """64-d features before the ReLU (what digits-FID compares)."""
        out: torch.Tensor = self.fc(self.conv(x).flatten(1))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits."""
        out: torch.Tensor = self.head(torch.relu(self.features(x)))
        return out


def as_input(images: U8) -> torch.Tensor:
    """uint8 (N, 8, 8, 1) images -> float (N, 1, 8, 8) in [0, 1]."""
    if images.ndim != 4 or images.shape[1:] != (8, 8, 1):
        raise ValueError(f"digits metrics need (N, 8, 8, 1) images, got {images.shape}")
    return torch.from_numpy(images.astype(np.float32) / 255.0).permute(0, 3, 1, 2).contiguous()


_CLASSIFIER: DigitsClassifier | None = None


def load_classifier() -> DigitsClassifier:
    """The pinned digits classifier (loaded once per process)."""
    global _CLASSIFIER
    if _CLASSIFIER is None:
        from safetensors.torch import load_file

        model = DigitsClassifier()
        model.load_state_dict(load_file(str(CLASSIFIER_FILE)))
        model.eval()
        _CLASSIFIER = model
    return _CLASSIFIER


@torch.no_grad()
def classify(images: U8) -> tuple[F64, F64]:
    """(features (N, 64), class probabilities (N, 10)) of uint8 digits."""
    model = load_classifier()
    x = as_input(images)
    feats = model.features(x)
    probs = torch.softmax(model.head(torch.relu(feats)), dim=1)
    return feats.double().numpy(), probs.double().numpy()


def gaussian(feats: F64) -> tuple[F64, F64]:
    """Mean and covariance (unbiased) of feature rows."""
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def _sqrt_psd(a: F64) -> F64:
    w, v = np.linalg.eigh((a + a.T) / 2)
    out: F64 = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    return out


def frechet_distance(mu1: F64, s1: F64, mu2: F64, s2: F64) -> float:
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)); the trace of the root is taken
    as tr((S1^(1/2) S2 S1^(1/2))^(1/2)), which is symmetric and stable for singular S."""
    r1 = _sqrt_psd(s1)
    middle = r1 @ s2 @ r1
    w = np.linalg.eigvalsh((middle + middle.T) / 2)
    tr_root = float(np.sqrt(np.clip(w, 0.0, None)).sum())
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_root)


def _pairwise(a: F64, b: F64) -> F64:
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    out: F64 = np.sqrt(np.clip(d, 0.0, None))
    return out


def precision_recall(real: F64, fake: F64, k: int = PR_K) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) with k-NN balls."""
    def radii(x: F64) -> F64:
        d = _pairwise(x, x)
        out: F64 = np.sort(d, axis=1)[:, k]  # column 0 is the point itself
        return out

    r_real, r_fake = radii(real), radii(fake)
    d = _pairwise(fake, real)  # (n_fake, n_real)
    precision = float((d <= r_real[None, :]).any(axis=1).mean())
    recall = float((d.T <= r_fake[None, :]).any(axis=1).mean())
    return precision, recall


def entropy(labels: npt.NDArray[np.int64], num_classes: int = 10) -> float:
    """Entropy (nats) of the label histogram; ln 10 = 2.303 for uniform digits."""
    p = np.bincount(labels, minlength=num_classes).astype(np.float64)
    p = p[p > 0] / p.sum()
    return float(-(p * np.log(p)).sum())


def nearest_distances(queries: U8, reference: U8) -> F64:
    """L2 distance (pixels in [0, 1]) from each query image to its nearest reference image."""
    q = queries.reshape(len(queries), -1).astype(np.float64) / 255.0
    r = reference.reshape(len(reference), -1).astype(np.float64) / 255.0
    out: F64 = _pairwise(q, r).min(axis=1)
    return out


SampleFn = Callable[[int, int], tuple[U8, "npt.NDArray[np.int64] | None"]]


def digits_report(sample: SampleFn, *, train: U8, heldout: U8, seed: int = 12345
                  ) -> dict[str, Any]:
    """The digits quality report for a sampler ``sample(seed, n) -> (images, labels or None)``.

    ``train``/``heldout``: the train split and the 540 held-out digits (uint8
    (N, 8, 8, 1)). Keys: ``digits_fid`` (mean of 5 draws) and ``digits_fid_std``,
    ``class_entropy``, ``confident_share`` (max probability >= 0.9),
    ``precision``/``recall`` (k = 3, mean over draws), ``label_accuracy``
    (conditional: share classified as the requested label),
    ``nn_train_ratio`` (median distance of generated images to their nearest
    train image over the same for held-out images; well below 1 means copying)
    and ``copied_share`` (generated images closer to a train image than 99% of
    held-out images are).
    """
    real_feats, _ = classify(heldout)
    mu_r, s_r = gaussian(real_feats)
    fids, precs, recs = [], [], []
    all_pred, all_conf, all_imgs = [], [], []
    hits: list[float] = []
    for i in range(FID_DRAWS):
        images, labels = sample(seed + i, FID_SAMPLES)
        feats, probs = classify(images)
        fids.append(frechet_distance(*gaussian(feats), mu_r, s_r))
        p, r = precision_recall(real_feats, feats)
        precs.append(p)
        recs.append(r)
        pred = probs.argmax(axis=1)
        all_pred.append(pred)
        all_conf.append(probs.max(axis=1))
        all_imgs.append(images)
        if labels is not None:
            hits.append(float((pred == labels).mean()))
    pred_all = np.concatenate(all_pred)
    gen_nn = nearest_distances(np.concatenate(all_imgs)[:FID_SAMPLES], train)
    held_nn = nearest_distances(heldout, train)
    report: dict[str, Any] = {
        "digits_fid": float(np.mean(fids)),
        "digits_fid_std": float(np.std(fids)),
        "class_entropy": entropy(pred_all),
        "confident_share": float((np.concatenate(all_conf) >= CONFIDENT).mean()),
        "precision": float(np.mean(precs)),
        "recall": float(np.mean(recs)),
        "nn_train_ratio": float(np.median(gen_nn) / np.median(held_nn)),
        "copied_share": float((gen_nn < np.quantile(held_nn, 0.01)).mean()),
    }
    if hits:
        report["label_accuracy"] = float(np.mean(hits))
    return report


def reference_points(train: U8, heldout: U8, *, seed: int = 0) -> dict[str, float]:
    """digits-FID of reference samplers against the held-out digits: the train split
    (the floor), uniform noise, and one train image repeated."""
    real_feats, _ = classify(heldout)
    mu_r, s_r = gaussian(real_feats)
    rng = np.random.Generator(np.random.Philox(seed))

    def fid_of(draw: Callable[[], U8]) -> float:
        return float(np.mean([frechet_distance(*gaussian(classify(draw())[0]), mu_r, s_r)
                              for _ in range(FID_DRAWS)]))

    return {
        "train_split": fid_of(lambda: train[rng.choice(len(train), FID_SAMPLES, replace=False)]),
        "uniform_noise": fid_of(
            lambda: rng.integers(0, 256, (FID_SAMPLES, 8, 8, 1), dtype=np.uint8)),
        "one_image_repeated": fid_of(lambda: np.repeat(train[:1], FID_SAMPLES, axis=0)),
    }


def sliced_wasserstein(a: U8, b: U8, *, seed: int = 0, patches: int = 64,
                       projections: int = 512, patch: int = 7) -> dict[str, float]:
    """Multi-scale sliced Wasserstein distance between two image sets (Karras et al. 2018).

    For each level of a Laplacian pyramid (down to 8 pixels), ``patches`` random
    ``patch`` x ``patch`` neighbourhoods per image, normalised per channel over
    both sets, are projected on ``projections`` random unit directions; the SWD
    is the mean absolute difference of the sorted projections. Reported x 1e3
    per level (``swd_<size>``) and averaged (``swd``). No pretrained network.
    """
    rng = np.random.Generator(np.random.Philox(seed))
    n = min(len(a), len(b))
    pa = _pyramid(a[:n].astype(np.float64) / 127.5 - 1.0)
    pb = _pyramid(b[:n].astype(np.float64) / 127.5 - 1.0)
    out: dict[str, float] = {}
    for la, lb in zip(pa, pb, strict=True):
        size = la.shape[1]
        p = min(patch, size)
        da = _patches(la, p, patches, rng)
        db = _patches(lb, p, patches, rng)
        both = np.concatenate([da, db])
        mean, std = both.mean(axis=0), both.std(axis=0) + 1e-8
        da, db = (da - mean) / std, (db - mean) / std
        dirs = rng.standard_normal((da.shape[1], projections))
        dirs /= np.linalg.norm(dirs, axis=0, keepdims=True)
        pa_, pb_ = np.sort(da @ dirs, axis=0), np.sort(db @ dirs, axis=0)
        out[f"swd_{size}"] = float(np.abs(pa_ - pb_).mean() * 1e3)
    out["swd"] = float(np.mean(list(out.values())))
    return out


def _pyramid(x: F64) -> list[F64]:
    """Laplacian pyramid of (N, H, W, C) images, finest first, down to 8 pixels."""
    levels = []
    cur = x
    while cur.shape[1] >= 16:
        small = cur.reshape(cur.shape[0], cur.shape[1] // 2, 2, cur.shape[2] // 2, 2,
                            cur.shape[3]).mean(axis=(2, 4))
        levels.append(cur - small.repeat(2, axis=1).repeat(2, axis=2))
        cur = small
    levels.append(cur)
    return levels


def _patches(x: F64, p: int, per_image: int, rng: np.random.Generator) -> F64:
    n, h, w, c = x.shape
    ys = rng.integers(0, h - p + 1, (n, per_image))
    xs = rng.integers(0, w - p + 1, (n, per_image))
    idx = np.arange(n)[:, None]
    out = np.stack([x[idx, ys + dy, xs + dx] for dy in range(p) for dx in range(p)], axis=2)
    return out.reshape(n * per_image, p * p * c)



__all__ = [
    "DigitsClassifier", "classify", "digits_report", "frechet_distance", "precision_recall",
    "reference_points", "sliced_wasserstein", "entropy", "nearest_distances",
]
