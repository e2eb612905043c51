"""Progress reporting for long work (training, counting, evaluation).

Library code reports through a :class:`Progress` object it is given and stays
silent by default. The CLI passes :func:`console_progress`, which draws bars on
a terminal and prints nothing when stderr is piped.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Task:
    """One unit of tracked work: ``advance`` it, attach metrics with ``set``."""

    def advance(self, amount: float = 1) -> None:
        """Record ``amount`` more units done."""

    def set(self, **metrics: Any) -> None:
        """Show current metrics (losses, rates) next to the bar."""


class Progress:
    """Receives progress reports; the base class ignores them."""

    @contextmanager
    def task(self, description: str, total: float | None = None, unit: str = "it"
             ) -> Iterator[Task]:
        """A context for one piece of work of ``total`` units (None if unknown)."""
        yield Task()

    def log(self, message: str) -> None:
        """A one-line message (e.g. where a checkpoint was written)."""


class _TqdmTask(Task):
    def __init__(self, bar: Any) -> None:
        self._bar = bar

    def advance(self, amount: float = 1) -> None:
        self._bar.update(amount)

    def set(self, **metrics: Any) -> None:
        self._bar.set_postfix(
            {k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in metrics.items()},
            refresh=False,
        )


class ConsoleProgress(Progress):
    """Progress bars on stderr (tqdm)."""

    @contextmanager
    def task(self, description: str, total: float | None = None, unit: str = "it"
             ) -> Iterator[Task]:
        from tqdm import tqdm

        # Whole counts ("7/300 step", not "7.00/300"); work of unknown size shows the
        # elapsed time only (not "0.00it").
        fmt = "{desc}: {elapsed}{postfix}" if total is None else None
        bar = tqdm(total=total, desc=description, unit=unit, file=sys.stderr, leave=True,
                   dynamic_ncols=True, unit_scale=False, bar_format=fmt)
        try:
            yield _TqdmTask(bar)
        finally:
            bar.close()

    def log(self, message: str) -> None:
        from tqdm import tqdm

        tqdm.write(message, file=sys.stderr)


def console_progress() -> Progress:
    """Bars when stderr is a terminal, silence when it is piped or redirected."""
    return ConsoleProgress() if sys.stderr.isatty() else Progress()
