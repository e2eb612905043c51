"""Built-in plugin: the datasets shipped in the wheel (``tinyshakespeare``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from aigc_engine.plugin_api import DatasetSpec, TextDataset, hookimpl

DATA = Path(__file__).parent / "data"


@hookimpl
def aigc_register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    """``tinyshakespeare``: 40,000 lines of Shakespeare (1.1 MB, public domain)."""
    register(DatasetSpec(
        name="tinyshakespeare",
        modality="text",
        loader=lambda: TextDataset(name="tinyshakespeare", paths=[DATA / "tinyshakespeare.txt"]),
        description="40,000 lines of Shakespeare's plays, as used by char-rnn (1.1 MB)",
    ))
