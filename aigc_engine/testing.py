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
from .generator import ImageGenerator, TextGenerator


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
    - for text, ``stream`` pieces join to the generated text;
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
        streamed = "".join(gen.stream_text(seed=7, **req))
        assert streamed == first[0], (
            f"{name!r}: streamed pieces {streamed!r} do not join to the text {first[0]!r}")
    with tempfile.TemporaryDirectory() as tmp:
        path = gen.save(Path(tmp) / "bundle")
        loaded = engine.load(path)
        assert type(loaded) is type(gen), f"{name!r}: load gave {type(loaded).__name__}"
        assert loaded.config == gen.config, f"{name!r}: config changed in a save/load round trip"
        assert _output(loaded, seed=7, n=1, **req) == first, (
            f"{name!r}: output changed in a save/load round trip")


def _output(gen: Any, *, seed: int, n: int, **request: Any) -> list[Any]:
    if isinstance(gen, TextGenerator):
        return list(gen.generate(seed=seed, n=n, **request).texts)
    if isinstance(gen, ImageGenerator):
        result = gen.generate(seed=seed, n=n, **request)
        return [img.tobytes() for img in result.images]
    raise AssertionError(f"unknown generator kind {type(gen).__name__}")
