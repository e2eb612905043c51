"""DCGAN networks (torch): generator and discriminator for square sizes 8, 16, 32 and 64.

The DCGAN recipe (Radford et al. 2016, PyTorch's dcgan example): transposed
convolutions with BatchNorm and ReLU in G and a tanh output; strided
convolutions with BatchNorm (not on the first layer) and LeakyReLU(0.2) in D;
weights drawn from N(0, 0.02), BatchNorm scales from N(1, 0.02).

Class-conditional mode: G gets a learned label embedding concatenated to z;
D gets the label as one-hot maps concatenated to the image channels.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

SIZES = (8, 16, 32, 64)


def _n_up(size: int) -> int:
    if size not in SIZES:
        raise ValueError(f"image size must be one of {SIZES}, got {size}")
    return int(math.log2(size)) - 2


class DCGANGenerator(nn.Module):
    """z (N, latent_dim) [+ label (N,)] -> image (N, C, S, S) in [-1, 1].

    4x4 from z by a 4x4 transposed convolution (``width * 2**k`` channels, k =
    log2(S) - 2), then k upsampling blocks halving the channels, then a 3x3
    convolution to C channels and tanh. Conditional: a learned label embedding
    is concatenated to z ("input"), and with ``labels="all"`` also, as maps,
    to the input of every later block.
    """

    def __init__(self, *, size: int, channels: int, latent_dim: int, width: int,
                 num_classes: int = 0, labels: str = "input") -> None:
        super().__init__()
        if labels not in ("input", "all"):
            raise ValueError(f"labels must be 'input' or 'all', got {labels!r}")
        k = _n_up(size)
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        self.labels = labels
        self.embed = nn.Embedding(num_classes, num_classes) if num_classes > 0 else None
        extra = num_classes if labels == "all" else 0
        ch = width * 2 ** k
        self.stem = nn.Sequential(
            nn.ConvTranspose2d(latent_dim + num_classes, ch, 4, 1, 0, bias=False),
            nn.BatchNorm2d(ch), nn.ReLU(True))
        blocks = []
        for _ in range(k):
            blocks.append(nn.Sequential(
                nn.ConvTranspose2d(ch + extra, ch // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ch // 2), nn.ReLU(True)))
            ch //= 2
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Sequential(nn.Conv2d(ch + extra, channels, 3, 1, 1), nn.Tanh())

    def forward(self, z: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        """Images for latents ``z`` (and labels for a conditional generator)."""
        emb: torch.Tensor | None = None
        if self.embed is not None:
            if label is None:
                raise ValueError("a conditional generator needs labels")
            emb = self.embed(label)[:, :, None, None]
            z = torch.cat([z, emb[:, :, 0, 0]], dim=1)
        h = self.stem(z[:, :, None, None])

        def with_maps(t: torch.Tensor) -> torch.Tensor:
            if emb is None or self.labels != "all":
                return t
            return torch.cat([t, emb.expand(-1, -1, t.shape[2], t.shape[3])], dim=1)

        for block in self.blocks:
            h = block(with_maps(h))
        out: torch.Tensor = self.head(with_maps(h))
        return out


class DCGANDiscriminator(nn.Module):
    """image (N, C, S, S) [+ label (N,)] -> one logit per image (N,).

    A 3x3 convolution to ``width`` channels, then strided 4x4 blocks doubling
    the channels down to 4x4, then a 4x4 convolution to one logit. Conditional
    (``labels``): "input" concatenates one-hot label maps to the image; "all"
    also to the input of every block; "projection" adds the projection term
    <embed(label), features> (Miyato & Koyama 2018) to the input maps.
    """

    def __init__(self, *, size: int, channels: int, width: int, num_classes: int = 0,
                 labels: str = "input") -> None:
        super().__init__()
        if labels not in ("input", "all", "projection"):
            raise ValueError(f"labels must be 'input', 'all' or 'projection', got {labels!r}")
        k = _n_up(size)
        self.num_classes = num_classes
        self.labels = labels
        extra = num_classes if labels == "all" else 0
        ch = width
        self.stem = nn.Sequential(nn.Conv2d(channels + num_classes, ch, 3, 1, 1),
                                  nn.LeakyReLU(0.2, True))
        blocks = []
        for _ in range(k):
            blocks.append(nn.Sequential(nn.Conv2d(ch + extra, ch * 2, 4, 2, 1, bias=False),
                                        nn.BatchNorm2d(ch * 2), nn.LeakyReLU(0.2, True)))
            ch *= 2
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Conv2d(ch + extra, 1, 4, 1, 0)
        self.embed = nn.Embedding(num_classes, ch * 16) \
            if num_classes > 0 and labels == "projection" else None

    def forward(self, x: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (real > fake) for images ``x``."""
        onehot: torch.Tensor | None = None
        if self.num_classes > 0:
            if label is None:
                raise ValueError("a conditional discriminator needs labels")
            onehot = F.one_hot(label, self.num_classes).to(x.dtype)[:, :, None, None]

        def with_maps(h: torch.Tensor) -> torch.Tensor:
            assert onehot is not None
            return torch.cat([h, onehot.expand(-1, -1, h.shape[2], h.shape[3])], dim=1)

        h = self.stem(with_maps(x) if onehot is not None else x)
        for block in self.blocks:
            h = block(with_maps(h) if self.labels == "all" else h)
        out: torch.Tensor = self.head(with_maps(h) if self.labels == "all" else h).flatten()
        if self.embed is not None:
            assert label is not None
            out = out + (self.embed(label) * h.flatten(1)).sum(dim=1)
        return out


def dcgan_init(module: nn.Module) -> None:
    """N(0, 0.02) weights for convolutions, N(1, 0.02) scales and zero shifts for BatchNorm."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, 0.0, 1.0)


def d_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Discriminator loss on real and fake logits: non-saturating (BCE) or hinge."""
    if kind == "hinge":
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def g_loss(kind: str, fake: torch.Tensor) -> torch.Tensor:
    """Generator loss on fake logits: non-saturating -log D(G(z)), or hinge -D(G(z))."""
    if kind == "hinge":
        return -fake.mean()
    return F.softplus(-fake).mean()
