"""``python -m aigc_engine``: the same as the ``aigc`` command."""

from .cli import main

main()
