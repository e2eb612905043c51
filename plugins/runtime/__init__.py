"""Built-in plugin: exported text models run by the torch-free runtime (``text-onnx``)."""

from __future__ import annotations

from collections.abc import Callable

from aigc_engine.plugin_api import GeneratorSpec, hookimpl


@hookimpl
def aigc_register_generators(register: Callable[[GeneratorSpec], None]) -> None:
    """The ``text-onnx`` generator: exported decoder (KV cache) and recurrent graphs."""
    register(GeneratorSpec(
        name="text-onnx",
        modality="text",
        factory="aigc_engine.runtime.text:OnnxTextGenerator",
        description="Exported text model (Transformer with KV cache, LSTM) on onnxruntime, "
                    "no torch",
    ))
