"""The generator rewritten for inference, as exported to ONNX.

Same function as :class:`~.nets.DCGANGenerator` in eval mode (outputs equal
to float rounding), in operations onnxruntime runs fast on one CPU thread:

- every BatchNorm is folded into the convolution before it (eval statistics);
- the stem, a 4x4 transposed convolution of a 1x1 input, is one matrix
  product (``Gemm``) and a reshape;
- the head, a 3x3 convolution to 1 to 3 channels, is a 1x1 convolution to
  one map per tap and a 3x3 convolution that adds the maps at their offsets
  (one-hot weights), which onnxruntime runs several times faster;
- each upsampling block (with ``phase_conv``), a 4x4 transposed convolution with stride 2 and
  padding 1, is a 3x3 convolution to 4x the channels (one group per output
  pixel phase, unused taps zero) followed by ``DepthToSpace`` (pixel shuffle).
  onnxruntime's ConvTranspose loops over the batch with small matrix
  products; its Conv kernels (NCHWc) are several times faster per
  multiply-add, which more than pays for the zero taps.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .nets import DCGANGenerator


def _bn_scale_shift(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    assert bn.running_var is not None and bn.running_mean is not None
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


def _phase_conv(conv: nn.ConvTranspose2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A 3x3 conv (pad 1) whose 4*C_out outputs, pixel-shuffled, are conv(x) then bn."""
    w = conv.weight.detach()  # (C_in, C_out, 4, 4)
    c_in, c_out = w.shape[0], w.shape[1]
    scale, shift = _bn_scale_shift(bn)
    w = w * scale[None, :, None, None]
    bias = shift if conv.bias is None else shift + conv.bias * scale
    # Output row 2m + a takes input rows m-1, m, m+1 (3x3 window index 0, 1, 2)
    # through kernel row tap[a][window]: a=0 -> (3, 1, -); a=1 -> (-, 2, 0).
    tap = ((3, 1, None), (None, 2, 0))
    k = torch.zeros(c_out, 2, 2, c_in, 3, 3, dtype=w.dtype)
    for a in range(2):
        for b in range(2):
            for i in range(3):
                for j in range(3):
                    ky, kx = tap[a][i], tap[b][j]
                    if ky is not None and kx is not None:
                        k[:, a, b, :, i, j] = w[:, :, ky, kx].t()
    out = nn.Conv2d(c_in, 4 * c_out, 3, 1, 1)
    with torch.no_grad():
        out.weight.copy_(k.reshape(4 * c_out, c_in, 3, 3))  # channel o*4 + a*2 + b (CRD)
        assert out.bias is not None
        out.bias.copy_(bias.repeat_interleave(4))
    return out


def _split_head(conv: nn.Conv2d) -> tuple[nn.Conv2d, nn.Conv2d]:
    """A 3x3 conv to few channels as a 1x1 conv to 9x the channels (one per tap)
    and a 3x3 conv that sums each tap's map at its offset (one-hot weights).

    onnxruntime's Conv kernels are slow for 1 to 3 output channels; this puts
    the multiply-adds in a conv with 9x the outputs and 1/9 of the inputs.
    """
    w = conv.weight.detach()  # (C_out, C_in, 3, 3)
    c_out, c_in = w.shape[0], w.shape[1]
    taps = nn.Conv2d(c_in, 9 * c_out, 1, bias=False)
    shift = nn.Conv2d(9 * c_out, c_out, 3, 1, 1)
    one_hot = torch.zeros(c_out, c_out, 9, 3, 3, dtype=w.dtype)
    for o in range(c_out):
        for t in range(9):
            one_hot[o, o, t, t // 3, t % 3] = 1.0
    with torch.no_grad():
        taps.weight.copy_(w.permute(0, 2, 3, 1).reshape(9 * c_out, c_in, 1, 1))  # o*9 + t
        shift.weight.copy_(one_hot.reshape(c_out, 9 * c_out, 3, 3))
        assert shift.bias is not None
        if conv.bias is not None:
            shift.bias.copy_(conv.bias)
        else:
            shift.bias.zero_()
    return taps, shift


class InferenceGenerator(nn.Module):
    """z (N, latent_dim) [+ label (N,)] -> image (N, C, S, S), as the generator in eval mode."""

    def __init__(self, g: DCGANGenerator, *, phase_conv: bool = False) -> None:
        super().__init__()
        if g.training:
            raise ValueError("fold a generator in eval mode (BatchNorm running statistics)")
        stem_conv, stem_bn = g.stem[0], g.stem[1]
        assert isinstance(stem_conv, nn.ConvTranspose2d) and isinstance(stem_bn, nn.BatchNorm2d)
        w = stem_conv.weight.detach()  # (C_in, C, 4, 4) on a 1x1 input: a matrix product
        scale, shift = _bn_scale_shift(stem_bn)
        w = w * scale[None, :, None, None]
        self.channels = int(w.shape[1])
        self.stem = nn.Linear(w.shape[0], w.shape[1] * 16)
        with torch.no_grad():
            self.stem.weight.copy_(w.reshape(w.shape[0], -1).t())
            self.stem.bias.copy_(shift.detach().repeat_interleave(16))
        blocks: list[nn.Module] = []
        for block in g.blocks:
            assert isinstance(block, nn.Sequential)
            conv, bn = block[0], block[1]
            assert isinstance(conv, nn.ConvTranspose2d) and isinstance(bn, nn.BatchNorm2d)
            assert conv.kernel_size == (4, 4) and conv.stride == (2, 2) and conv.padding == (1, 1)
            blocks.append(_phase_conv(conv, bn) if phase_conv else
                          fuse_conv_bn_eval(conv, bn, transpose=True))
        self.blocks = nn.ModuleList(blocks)
        self.phase_conv = phase_conv
        head_conv, head_act = g.head[0], g.head[1]
        assert isinstance(head_conv, nn.Conv2d) and head_conv.kernel_size == (3, 3)
        self.head = nn.Sequential(*_split_head(head_conv), head_act)
        self.embed = g.embed
        self.all_labels = g.labels == "all"
        self.eval()

    def forward(self, z: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        """Images for latents ``z`` (and labels for a conditional generator)."""
        emb: torch.Tensor | None = None
        if self.embed is not None:
            if label is None:
                raise ValueError("a conditional generator needs labels")
            emb = self.embed(label)
            z = torch.cat([z, emb], dim=1)
        h = F.relu(self.stem(z)).reshape(-1, self.channels, 4, 4)

        def with_maps(t: torch.Tensor) -> torch.Tensor:
            if emb is None or not self.all_labels:
                return t
            maps = emb[:, :, None, None].expand(-1, -1, t.shape[2], t.shape[3])
            return torch.cat([t, maps], dim=1)

        for conv in self.blocks:
            h = conv(with_maps(h))
            h = F.relu(F.pixel_shuffle(h, 2) if self.phase_conv else h)
        out: torch.Tensor = self.head(with_maps(h))
        return out
