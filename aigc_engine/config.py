"""Generator configurations: frozen dataclasses validated on construction.

A generator's options live in a subclass of :class:`GeneratorConfig`. Fields are
typed; values are checked against their types when the config is built, and
:meth:`GeneratorConfig.validate` adds the generator's own rules. Configs built
from strings (``aigc train --set order=5``) go through
:meth:`GeneratorConfig.from_mapping` with ``coerce=True``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar, Union

from .errors import ConfigError

C = TypeVar("C", bound="GeneratorConfig")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclasses.dataclass(frozen=True)
class GeneratorConfig:
    """Base class of generator configurations (subclass it as a frozen dataclass).

    Override :meth:`validate` to check relations between fields; raise
    :class:`~aigc_engine.errors.ConfigError` naming the field and the value.
    """

    _hints: ClassVar[dict[str, Any]]

    def __post_init__(self) -> None:
        hints = _type_hints(type(self))
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            checked = _check_type(type(self).__name__, field.name, value, hints[field.name])
            if checked is not value:
                object.__setattr__(self, field.name, checked)
        self.validate()

    def validate(self) -> None:
        """Check the generator's own rules; the base class checks types only."""

    @classmethod
    def field_names(cls) -> list[str]:
        """The names of the options this config accepts."""
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_mapping(cls: type[C], values: Mapping[str, Any], *, coerce: bool = False) -> C:
        """Build a config from a mapping, rejecting unknown keys.

        With ``coerce=True`` string values are converted to the field's type
        (``"5"`` -> 5, ``"true"`` -> True, ``"1,2"`` or ``"[1, 2]"`` -> (1, 2)).
        """
        names = cls.field_names()
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ConfigError(
                f"unknown option(s) {', '.join(map(repr, unknown))} for {cls.__name__}; "
                f"valid options: {', '.join(names) or '(none)'}"
            )
        hints = _type_hints(cls)
        kwargs: dict[str, Any] = {}
        for key, value in values.items():
            if coerce and isinstance(value, str):
                value = _coerce(cls.__name__, key, value, hints[key])
            kwargs[key] = value
        return cls(**kwargs)

    def replace(self: C, **changes: Any) -> C:
        """A copy with some options changed (validated again)."""
        return type(self).from_mapping({**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        """The options as JSON-compatible values (tuples become lists)."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}


def _type_hints(cls: type) -> dict[str, Any]:
    cached = cls.__dict__.get("_aigc_hints")
    if cached is None:
        cached = typing.get_type_hints(cls)
        type.__setattr__(cls, "_aigc_hints", cached)
    return typing.cast(dict[str, Any], cached)


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType)


def _check_type(owner: str, name: str, value: Any, tp: Any) -> Any:
    """Return value (possibly converted: int -> float, list -> tuple) or raise ConfigError."""
    if tp is Any:
        return value
    if _is_union(tp):
        for option in typing.get_args(tp):
            try:
                return _check_type(owner, name, value, option)
            except ConfigError:
                continue
        raise ConfigError(f"{owner}.{name}: expected {_type_name(tp)}, got {value!r}")
    if tp is type(None):
        if value is None:
            return value
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif typing.get_origin(tp) is tuple:
        args = typing.get_args(tp)
        if isinstance(value, (list, tuple)):
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(_check_type(owner, name, v, args[0]) for v in value)
            if len(args) == len(value):
                return tuple(_check_type(owner, name, v, a)
                             for v, a in zip(value, args, strict=True))
    elif typing.get_origin(tp) is typing.Literal:
        if value in typing.get_args(tp):
            return value
        choices = ", ".join(repr(a) for a in typing.get_args(tp))
        raise ConfigError(f"{owner}.{name}: expected one of {choices}, got {value!r}")
    elif isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ConfigError(f"{owner}.{name}: expected {_type_name(tp)}, got {value!r}")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(owner: str, name: str, text: str, tp: Any) -> Any:
    """Convert a command-line string to the field's type."""
    if _is_union(tp):
        options = typing.get_args(tp)
        if type(None) in options and text.strip().lower() in ("none", "null", ""):
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(owner, name, text, option)
            except ConfigError:
                continue
        raise ConfigError(f"{owner}.{name}: cannot read {text!r} as {_type_name(tp)}")
    try:
        if tp is bool:
            low = text.strip().lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError(text)
        if tp is int:
            return int(text)
        if tp is float:
            return float(text)
        if typing.get_origin(tp) is tuple:
            args = typing.get_args(tp)
            inner = text.strip()
            # "[0.5, 1.0, 1.5]" and "(0.5,1,1.5)" as well as "0.5,1,1.5" or "0.5 1 1.5"
            if inner[:1] + inner[-1:] in ("[]", "()"):
                inner = inner[1:-1]
            parts = [p for p in inner.replace(" ", ",").split(",") if p]
            item = args[0]
            return tuple(_coerce(owner, name, p, item) for p in parts)
    except ValueError:
        raise ConfigError(f"{owner}.{name}: cannot read {text!r} as {_type_name(tp)}") from None
    return text
