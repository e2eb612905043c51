"""The LSTM as a ``recurrent`` graph of the torch-free runtime: ``h0``/``c0`` in and
``hn``/``cn`` out for every layer (never state baked into the graph, which the
exporters would fix to one batch size)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class RecurrentGraph(nn.Module):
    """``(input_ids, h0, c0) -> (logits, hn, cn)`` over a trained LSTM net."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net: Any = net

    def forward(self, input_ids: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits, (hn, cn) = self.net.run(input_ids, (h0, c0))
        return logits, hn, cn
