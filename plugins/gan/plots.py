"""A loss-curve plot drawn with Pillow (no plotting library needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

COLOURS = {"d_loss": (200, 40, 40), "g_loss": (40, 90, 200)}


def loss_curve(history: Sequence[dict[str, float]], path: Path, *, width: int = 640,
               height: int = 360) -> Path:
    """Plot d_loss (red) and g_loss (blue) against step; writes a PNG at ``path``."""
    from PIL import Image, ImageDraw

    rows = [h for h in history if "d_loss" in h and "g_loss" in h]
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    left, right, top, bottom = 50, width - 10, 10, height - 30
    draw.rectangle((left, top, right, bottom), outline=(0, 0, 0))
    if rows:
        steps = [h["step"] for h in rows]
        values = [h[k] for h in rows for k in COLOURS]
        lo, hi = min(values), max(values)
        hi = hi if hi > lo else lo + 1.0
        s0, s1 = min(steps), max(steps)
        s1 = s1 if s1 > s0 else s0 + 1.0

        def xy(step: float, value: float) -> tuple[float, float]:
            return (left + (step - s0) / (s1 - s0) * (right - left),
                    bottom - (value - lo) / (hi - lo) * (bottom - top))

        for key, colour in COLOURS.items():
            points = [xy(h["step"], h[key]) for h in rows]
            if len(points) > 1:
                draw.line(points, fill=colour, width=2)
            else:
                draw.point(points, fill=colour)
        draw.text((2, top), f"{hi:.2f}", fill=(0, 0, 0))
        draw.text((2, bottom - 10), f"{lo:.2f}", fill=(0, 0, 0))
        draw.text((left, bottom + 5), f"step {s0:.0f}", fill=(0, 0, 0))
        draw.text((right - 80, bottom + 5), f"step {s1:.0f}", fill=(0, 0, 0))
    draw.text((left + 10, top + 5), "d_loss", fill=COLOURS["d_loss"])
    draw.text((left + 70, top + 5), "g_loss", fill=COLOURS["g_loss"])
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path
