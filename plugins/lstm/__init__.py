"""Built-in plugin: a multi-layer LSTM text generator (torch).

This module stays light (no torch at import): the generator class is named as
a ``"module:Class"`` string and imported on first use.
"""

from __future__ import annotations

from collections.abc import Callable

from aigc_engine.plugin_api import GeneratorSpec, hookimpl


@hookimpl
def aigc_register_generators(register: Callable[[GeneratorSpec], None]) -> None:
    """The ``lstm`` generator."""
    register(GeneratorSpec(
        name="lstm",
        modality="text",
        factory="aigc_engine.plugins.lstm.generator:LSTMGenerator",
        description="Multi-layer LSTM LM (state carried while generating; char/byte/BPE); torch",
    ))
