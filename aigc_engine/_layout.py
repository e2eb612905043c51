"""One package in two layouts: the source tree and an installed copy.

A script run from the repository root imports the source ``aigc_engine``
(the current directory comes first on ``sys.path``) even when the package is
installed. :func:`extend_package_path` lets such a package also search the
installed copy's folder, so what only the installed copy holds (the compiled
``_core``, the wheel's ``plugins``) is found, while every module the source
tree has comes from the source tree.
"""

from __future__ import annotations

import os
import sys


def extend_package_path(path: list[str], name: str) -> None:
    """Append to a package's ``__path__`` the folders of the same package found on
    ``sys.path`` (absolute paths, each once, after the package's own)."""
    parts = name.split(".")
    seen = {os.path.realpath(p) for p in path}
    for entry in list(sys.path):
        if not isinstance(entry, str):
            continue
        folder = os.path.join(os.path.abspath(entry or os.curdir), *parts)
        if os.path.isfile(os.path.join(folder, "__init__.py")) or \
                any(f.startswith("_core.") for f in _listing(folder)):
            real = os.path.realpath(folder)
            if real not in seen:
                seen.add(real)
                path.append(folder)


def _listing(folder: str) -> list[str]:
    try:
        return os.listdir(folder)
    except OSError:
        return []
