"""Train the pinned digits classifier behind digits-FID (run once; weights are shipped).

Trains ``aigc_engine.plugins.gan.metrics.DigitsClassifier`` on the 1,257-image
train split of the 8x8 digits (scikit-learn's ``train_test_split(test_size=0.3,
stratify=y, random_state=0)``, stored in plugins/gan/data/digits.npz), with
random one-pixel shifts as augmentation, seeded, on one CPU thread, and writes
plugins/gan/data/digits_classifier.safetensors (float32, with the held-out
accuracy in its metadata). Retraining changes what digits-FID measures: don't,
unless you also re-measure the reference points in docs/gan.md.

    python scripts/train_digits_classifier.py [--epochs 60] [--seed 0]
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch.nn import functional as F  # noqa: N812

from aigc_engine.plugins.gan.datasets import load_digits
from aigc_engine.plugins.gan.metrics import CLASSIFIER_FILE, DigitsClassifier, as_input

log = logging.getLogger("train_digits_classifier")


def shift(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Shift each image by -1, 0 or +1 pixels in x and y (zero fill)."""
    padded = F.pad(x, (1, 1, 1, 1))
    out = torch.empty_like(x)
    offs = torch.randint(0, 3, (x.shape[0], 2), generator=gen)
    for i in range(x.shape[0]):
        dy, dx = int(offs[i, 0]), int(offs[i, 1])
        out[i] = padded[i, :, dy:dy + 8, dx:dx + 8]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=CLASSIFIER_FILE)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    train, test = load_digits("train"), load_digits("test")
    assert train.labels is not None and test.labels is not None
    x, y = as_input(train.images), torch.from_numpy(train.labels)
    xt, yt = as_input(test.images), torch.from_numpy(test.labels)
    model = DigitsClassifier()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.epochs)
    start = time.process_time()
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(x), generator=gen)
        for b in range(0, len(x), 64):
            idx = perm[b:b + 64]
            loss = F.cross_entropy(model(shift(x[idx], gen)), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        if (epoch + 1) % 10 == 0:
            model.eval()
            with torch.no_grad():
                acc = (model(xt).argmax(1) == yt).float().mean().item()
            log.info("epoch %d: loss %.4f, held-out accuracy %.4f", epoch + 1, loss.item(), acc)
    model.eval()
    with torch.no_grad():
        acc = (model(xt).argmax(1) == yt).float().mean().item()
        train_acc = (model(x).argmax(1) == y).float().mean().item()
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(args.out), metadata={
        "heldout_accuracy": f"{acc:.4f}", "train_accuracy": f"{train_acc:.4f}",
        "epochs": str(args.epochs), "seed": str(args.seed),
        "script": "scripts/train_digits_classifier.py"})
    log.info("held-out accuracy %.4f, train accuracy %.4f, %.1f CPU-s; wrote %s (%d bytes)",
             acc, train_acc, time.process_time() - start, args.out, args.out.stat().st_size)


if __name__ == "__main__":
    main()
