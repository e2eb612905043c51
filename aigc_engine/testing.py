"""Helpers for plugin authors' own tests.

>>> from aigc_engine.testing import isolated_engine, check_generator
>>> engine = isolated_engine({"mygen": my_plugin_module})           # doctest: +SKIP
>>> check_generator(engine, "mygen", data=["some", "lines"])         # doctest: +SKIP

``isolated_engine`` builds an Engine with only the plugins given (no installed
entry points, no ``AIGC_PLUGINS``), so a test sees exactly what it sets up.
``check_generator`` runs the contract every generator must keep and raises
``AssertionError`` naming what broke.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from .engine import Engine
from .generator import ImageGenerator, TextDone, TextEvent, TextGenerator


def isolated_engine(plugins: dict[str, object] | None = None, *, strict: bool = True,
                    installed: bool = False) -> Engine:
    """An Engine with only ``plugins`` (name -> module/object) registered.

    ``installed=True`` also loads every installed entry point (``AIGC_PLUGINS``
    is ignored either way). Plugin failures raise (``strict=True``) so a test
    sees them.
    """
    return Engine(plugins="*", extra_plugins=plugins or {}, entry_points=installed,
                  strict=strict)


def check_generator(engine: Engine, name: str, *, data: Any = None,
                    options: dict[str, Any] | None = None,
                    request: dict[str, Any] | None = None) -> None:
    """Check one generator against the contract.

    - its spec is listed with a valid modality and a description;
    - it can be created with ``options`` and fitted on ``data`` (if given);
    - the same seed gives the same output; ``n`` samples come back; sample 0
      of ``n=2`` equals the ``n=1`` output;
    - for text, the streamed events of every sample join to the generated texts
      and the stream ends with the same result;
    - ``save`` then ``Engine.load`` gives a generator with the same output
      and the same config.
    """
    regs = {r.name: r for r in engine.list_generators()}
    assert name in regs, f"generator {name!r} is not listed; listed: {sorted(regs)}"
    reg = regs[name]
    assert reg.spec.description, f"generator {name!r} has no description"
    gen = engine.create(name, **(options or {}))
    assert gen.modality == reg.spec.modality, (
        f"{name!r}: spec says {reg.spec.modality!r}, class says {gen.modality!r}")
    if data is not None:
        metrics = gen.fit(data)
        assert isinstance(metrics, dict), f"{name!r}: fit() must return a dict of metrics"
    req = dict(request or {})
    first = _output(gen, seed=7, n=1, **req)
    again = _output(gen, seed=7, n=1, **req)
    assert first == again, f"{name!r}: the same seed gave different outputs"
    pair = _output(gen, seed=7, n=2, **req)
    assert len(pair) == 2, f"{name!r}: n=2 returned {len(pair)} samples"
    assert pair[0] == first[0], f"{name!r}: sample 0 of n=2 differs from the n=1 sample"
    if isinstance(gen, TextGenerator):
        _check_stream(gen, name, pair, seed=7, n=2, **req)
    with tempfile.TemporaryDirectory() as tmp:
        path = gen.save(Path(tmp) / "bundle")
        loaded = engine.load(path)
        assert type(loaded) is type(gen), f"{name!r}: load gave {type(loaded).__name__}"
        assert loaded.config == gen.config, f"{name!r}: config changed in a save/load round trip"
        assert _output(loaded, seed=7, n=1, **req) == first, (
            f"{name!r}: output changed in a save/load round trip")


def _check_stream(gen: TextGenerator, name: str, texts: list[str], **request: Any) -> None:
    """Streamed events of every sample join to the generated texts, each sample's
    last event has a finish reason, and the stream ends with the same result."""
    pieces = [""] * len(texts)
    finished = [False] * len(texts)
    done = None
    for item in gen.stream(**request):
        assert done is None, f"{name!r}: the stream went on after its TextDone"
        if isinstance(item, TextDone):
            done = item.result
            continue
        assert isinstance(item, TextEvent), f"{name!r}: stream yielded {item!r}"
        assert not finished[item.index], f"{name!r}: sample {item.index} streamed after its end"
        pieces[item.index] += item.text
        finished[item.index] = item.finish_reason is not None
    assert done is not None, f"{name!r}: the stream did not end with a TextDone"
    assert all(finished), f"{name!r}: a sample's stream has no final event with a finish reason"
    assert pieces == texts, (
        f"{name!r}: streamed pieces {pieces!r} do not join to the texts {texts!r}")
    assert done.texts == texts, f"{name!r}: the stream's result differs from generate()'s"
    assert [c.finish_reason for c in done.choices] == [
        c.finish_reason for c in gen.generate(**request).choices], (
        f"{name!r}: the stream's finish reasons differ from generate()'s")


def _output(gen: Any, *, seed: int, n: int, **request: Any) -> list[Any]:
    if isinstance(gen, TextGenerator):
        return list(gen.generate(seed=seed, n=n, **request).texts)
    if isinstance(gen, ImageGenerator):
        result = gen.generate(seed=seed, n=n, **request)
        return [img.tobytes() for img in result.images]
    raise AssertionError(f"unknown generator kind {type(gen).__name__}")
