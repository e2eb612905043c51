"""Write plugins/gan/data/digits.npz from scikit-learn's copy of the UCI digits (run once).

The file holds the 1,797 8x8 images (pixel values 0..16, uint8), their labels,
and the indices of scikit-learn's ``train_test_split(test_size=0.3, stratify=y,
random_state=0)`` split, so the plugin needs neither scikit-learn nor a
download at run time. Needs scikit-learn: ``pip install scikit-learn``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

OUT = Path(__file__).resolve().parents[1] / "plugins" / "gan" / "data" / "digits.npz"


def main() -> None:
    digits = load_digits()
    x = digits.images.astype(np.uint8)
    y = digits.target.astype(np.uint8)
    assert x.shape == (1797, 8, 8) and x.max() == 16
    idx = np.arange(len(y))
    train_idx, test_idx = train_test_split(idx, test_size=0.3, stratify=y, random_state=0)
    np.savez_compressed(OUT, images=x, labels=y, train_idx=train_idx.astype(np.int16),
                        test_idx=test_idx.astype(np.int16))
    print(f"wrote {OUT}: {len(train_idx)} train, {len(test_idx)} held-out")


if __name__ == "__main__":
    main()
