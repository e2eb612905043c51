"""The engine's exception types.

Every error the engine raises on purpose is an :class:`AigcError`. Each subclass
also derives from the builtin exception a caller would expect (``ValueError``,
``KeyError``, ``ImportError`` ...), so code that catches builtins keeps working.
"""

from __future__ import annotations


class AigcError(Exception):
    """Base class of all aigc-engine errors."""


class ConfigError(AigcError, ValueError):
    """A configuration or request value is invalid; the message names the field."""


class UnknownGeneratorError(AigcError, KeyError):
    """No installed plugin provides a generator of that name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class UnknownDatasetError(AigcError, KeyError):
    """A data source is neither a registered dataset nor a readable path."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class MissingDependencyError(AigcError, ImportError):
    """An optional dependency is not installed; the message gives the pip command."""

    def __init__(self, what: str, *, package: str, extra: str | None = None) -> None:
        spec = f"aigc-engine[{extra}]" if extra else package
        super().__init__(
            f"{what} needs {package!r}, which is not installed; "
            f"install it with: pip install -c constraints.txt '{spec}'"
        )
        self.package = package
        self.extra = extra


class ModelFormatError(AigcError, ValueError):
    """A model bundle or model file is missing, damaged, or of an unsupported format."""


class PluginError(AigcError, RuntimeError):
    """A plugin failed to load, raised in a hook, or conflicts with another plugin."""


class UnsupportedOperationError(AigcError, TypeError):
    """The generator does not support this operation (e.g. ONNX export of an n-gram model)."""


class DistributedError(AigcError, RuntimeError):
    """A distributed training run cannot go on: a rank died or became unreachable (the
    message names it), or the ranks disagree on their data or options."""


class CoreError(AigcError, RuntimeError):
    """An error raised by the compiled core on well-formed input it cannot process."""


__all__ = [
    "AigcError",
    "ConfigError",
    "CoreError",
    "DistributedError",
    "MissingDependencyError",
    "ModelFormatError",
    "PluginError",
    "UnknownDatasetError",
    "UnknownGeneratorError",
    "UnsupportedOperationError",
]
