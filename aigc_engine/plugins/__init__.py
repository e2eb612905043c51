"""The built-in plugins: ``plugins/`` in the repository, ``aigc_engine/plugins`` in the wheel.

pyproject.toml maps the repository's ``plugins/`` folder to this package in
the wheel. When this file is the repository's own (the source tree is being
imported: a script or ``python -m aigc_engine`` run from the checkout), the
checkout's ``plugins/`` folder joins this package's search path, so
``aigc_engine.plugins.ngram`` resolves in both layouts; any installed copy of
the package is searched after it.
"""

from __future__ import annotations

import os

from .._layout import extend_package_path

_HERE = os.path.dirname(os.path.abspath(__file__))
_CHECKOUT = os.path.dirname(os.path.dirname(_HERE))
_SOURCE_PLUGINS = os.path.join(_CHECKOUT, "plugins")

if os.path.isfile(os.path.join(_CHECKOUT, "pyproject.toml")) and os.path.isfile(
        os.path.join(_SOURCE_PLUGINS, "ngram", "__init__.py")):
    if _SOURCE_PLUGINS not in __path__:
        __path__.append(_SOURCE_PLUGINS)
extend_package_path(__path__, __name__)
