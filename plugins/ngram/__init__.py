"""Built-in plugin: n-gram language models (modified Kneser-Ney in C++, KenLM-exact)."""

from __future__ import annotations

from collections.abc import Callable

from aigc_engine.plugin_api import GeneratorSpec, hookimpl


@hookimpl
def aigc_register_generators(register: Callable[[GeneratorSpec], None]) -> None:
    """The ``ngram`` generator; it also opens KenLM/SRILM ``.arpa`` files and the binary
    files ``aigc export --format binary`` writes (``.bin``)."""
    register(GeneratorSpec(
        name="ngram",
        modality="text",
        factory="aigc_engine.plugins.ngram.generator:NgramGenerator",
        description="N-gram LM: modified Kneser-Ney as KenLM lmplz, ARPA in/out, fast sampling",
        file_suffixes=(".arpa", ".bin"),
    ))
