"""Built-in plugin: a decoder-only Transformer text generator (torch).

This module stays light (no torch at import): the generator class is named as
a ``"module:Class"`` string and imported on first use.
"""

from __future__ import annotations

from collections.abc import Callable

from aigc_engine.plugin_api import GeneratorSpec, hookimpl


@hookimpl
def aigc_register_generators(register: Callable[[GeneratorSpec], None]) -> None:
    """The ``transformer`` generator."""
    register(GeneratorSpec(
        name="transformer",
        modality="text",
        factory="aigc_engine.plugins.transformer.generator:TransformerGenerator",
        description="Decoder-only Transformer LM (KV cache, char/byte/BPE tokens); torch",
    ))
