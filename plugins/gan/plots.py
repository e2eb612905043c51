"""The GAN's loss curve: :func:`aigc_engine.training.loss_curve` of d_loss and g_loss."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

COLOURS = {"d_loss": (200, 40, 40), "g_loss": (40, 90, 200)}


def loss_curve(history: Sequence[dict[str, float]], path: Path, *, width: int = 640,
               height: int = 360) -> Path:
    """Plot d_loss (red) and g_loss (blue) against step; writes a PNG at ``path``."""
    from aigc_engine.training import loss_curve as plot

    return plot(history, path, keys=tuple(COLOURS), colours=tuple(COLOURS.values()),
                width=width, height=height)
