"""What plugin authors use: the hook marker, specs, base classes, errors.

A plugin module implements hooks with :data:`hookimpl` and is published through
the ``aigc_engine`` entry-point group::

    # pyproject.toml
    [project.entry-points.aigc_engine]
    mygen = "aigc_mygen"

    # aigc_mygen/__init__.py
    from aigc_engine.plugin_api import GeneratorSpec, hookimpl

    @hookimpl
    def aigc_register_generators(register):
        register(GeneratorSpec("mygen", "text", "aigc_mygen.model:MyGenerator",
                               description="..."))

Built-in plugins use only this module and ``aigc_engine``'s public names.
"""

from __future__ import annotations

from .bundle import Manifest, read_json
from .config import GeneratorConfig
from .datasets import Dataset, DatasetSpec, TextDataset, as_text_dataset
from .decoding import AheadChunk, TokenModel, TokenTextGenerator, cut_at_stop, text_metrics
from .engine import GeneratorSpec
from .errors import (
    AigcError,
    ConfigError,
    MissingDependencyError,
    ModelFormatError,
    PluginError,
    UnsupportedOperationError,
)
from .generator import (
    Completion,
    Generator,
    ImageGenerator,
    ImageRequest,
    ImageResult,
    SamplingParams,
    TextDone,
    TextEvent,
    TextGenerator,
    TextRequest,
    TextResult,
    TokenLogprob,
    Usage,
)
from .hookspecs import hookimpl
from .progress import Progress, Task
from .tokenizers import (
    BPETokenizer,
    ByteTokenizer,
    CharTokenizer,
    Decoder,
    Tokenizer,
    load_tokenizer,
    train_tokenizer,
)

__all__ = [
    "AheadChunk",
    "AigcError",
    "BPETokenizer",
    "ByteTokenizer",
    "CharTokenizer",
    "Completion",
    "Decoder",
    "ConfigError",
    "Dataset",
    "DatasetSpec",
    "Generator",
    "GeneratorConfig",
    "GeneratorSpec",
    "ImageGenerator",
    "ImageRequest",
    "ImageResult",
    "Manifest",
    "MissingDependencyError",
    "ModelFormatError",
    "PluginError",
    "Progress",
    "SamplingParams",
    "Task",
    "TextDataset",
    "TextDone",
    "TextEvent",
    "TextGenerator",
    "TextRequest",
    "TextResult",
    "TokenLogprob",
    "TokenModel",
    "TokenTextGenerator",
    "Tokenizer",
    "UnsupportedOperationError",
    "Usage",
    "as_text_dataset",
    "cut_at_stop",
    "hookimpl",
    "load_tokenizer",
    "text_metrics",
    "train_tokenizer",
    "read_json",
]
