"""The plugin contract: pluggy hook specifications of the ``aigc`` project.

A plugin is a module (or object) published through the ``aigc_engine``
entry-point group. It implements any of these hooks, decorated with
:data:`aigc_engine.plugin_api.hookimpl`, and receives its arguments by keyword,
so hooks can grow arguments without breaking plugins. pluggy is used to
register and discover; generation itself runs through plain objects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

    from .datasets import DatasetSpec
    from .engine import GeneratorSpec

PROJECT = "aigc"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def aigc_register_generators(register: Callable[[GeneratorSpec], None]) -> None:
    """Register generators by calling ``register(GeneratorSpec(...))`` once for each.

    A spec's ``factory`` may be the generator class or a ``"module:Class"``
    string that is imported only when the generator is first created, so that
    listing generators stays fast and never imports heavy libraries (torch).
    Two plugins registering one name is an error that names both.
    """


@hookspec
def aigc_register_commands(cli: click.Group) -> None:
    """Add commands to the ``aigc`` command line (``cli`` is its click group).

    Keep imports inside the command functions: ``aigc --help`` loads every
    plugin's hook, and must stay fast.
    """


@hookspec
def aigc_register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    """Register data sources by calling ``register(DatasetSpec(...))``.

    A spec with ``matches`` set handles paths (e.g. image folders); one without
    is a named dataset such as ``tinyshakespeare``.
    """


@hookspec
def aigc_process_result(request: Any, result: Any) -> Any:
    """Post-process a generated result (filters, watermarks).

    Return a replacement result (of the same type), or None to keep the one
    passed in (which may have been changed in place). Implementations run in
    pluggy's order (``tryfirst``/``trylast`` respected), each seeing the
    previous one's output; ``wrapper=True`` implementations wrap the rest of the
    chain (``result = yield`` gives the inner result, and an error of the inner
    chain is thrown into the wrapper at the ``yield``, as pluggy's wrappers
    have it; the wrapper returns the result). Applies to ``generate`` and to
    the final result of ``stream``; while such a processor is installed a
    stream holds each sample's text back until the processed result is known
    (implement :func:`aigc_process_stream` too to stream filtered text).
    """


@hookspec
def aigc_process_stream(request: Any, events: Iterator[Any]) -> Iterator[Any] | None:
    """Filter streamed text: take the iterator of events and return the iterator to use.

    ``events`` yields :class:`~aigc_engine.generator.TextEvent` pieces (sample
    index, text, token id; each sample's last event has its ``finish_reason``)
    and ends with a :class:`~aigc_engine.generator.TextDone`. A filter may see,
    hold back, rewrite, drop or add pieces, and must pass the ``TextDone`` on;
    return None to leave the stream as it is. The engine rebuilds the final
    result from the pieces that come out, and while a stream filter is
    installed ``generate`` runs through the stream too, so both agree.
    Implementations chain in pluggy's order (the first one sees the raw events).
    """
