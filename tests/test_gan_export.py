"""The inference rewrite of the generator that the ONNX export runs (plugins/gan/export.py)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from aigc_engine.plugins.gan.export import InferenceGenerator  # noqa: E402
from aigc_engine.plugins.gan.nets import DCGANGenerator  # noqa: E402


@pytest.mark.parametrize("size,channels,classes,labels,phase", [
    (8, 1, 0, "input", False), (8, 1, 0, "input", True), (16, 3, 10, "all", False),
    (16, 3, 10, "all", True), (8, 1, 10, "input", False)])
def test_rewrite_matches_eval_generator(size: int, channels: int, classes: int, labels: str,
                                        phase: bool) -> None:
    torch.manual_seed(0)
    g = DCGANGenerator(size=size, channels=channels, latent_dim=12, width=8,
                       num_classes=classes, labels=labels)
    for m in g.modules():  # BatchNorm statistics and affine terms away from the identity
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    g.eval()
    f = InferenceGenerator(g, phase_conv=phase)
    z = torch.randn(7, 12)
    lab = torch.randint(0, classes, (7,)) if classes else None
    with torch.no_grad():
        ref, got = g(z, lab), f(z, lab)
    assert got.shape == ref.shape == (7, channels, size, size)
    assert float((got - ref).abs().max()) < 1e-5


def test_rewrite_needs_eval_mode() -> None:
    g = DCGANGenerator(size=8, channels=1, latent_dim=4, width=4)
    with pytest.raises(ValueError, match="eval mode"):
        InferenceGenerator(g)
