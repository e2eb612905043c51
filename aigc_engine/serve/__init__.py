"""``aigc serve``: an OpenAI-compatible HTTP server for every generator (torch-free).

>>> from aigc_engine.serve import create_app            # doctest: +SKIP
>>> app = create_app({"lm": "path/to/bundle"})          # doctest: +SKIP
>>> # uvicorn.run(app, host="127.0.0.1", port=8000)

Needs the ``[serve]`` extra (Starlette, uvicorn, sse-starlette,
prometheus-client). ``docs/serve.md`` describes the endpoints, the chat
template, batching and its guarantee: a seeded request's text does not depend
on what else shares its batch.
"""

from __future__ import annotations

try:
    import prometheus_client  # noqa: F401
    import sse_starlette  # noqa: F401
    import starlette  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the install
    from ..errors import MissingDependencyError

    raise MissingDependencyError("the HTTP server", package=str(exc.name),
                                 extra="serve") from None

from .app import create_app
from .schema import CHAT_ROLES, CHAT_STOP, Limits

__all__ = ["CHAT_ROLES", "CHAT_STOP", "Limits", "create_app", "run"]


def run(app: object, *, host: str = "127.0.0.1", port: int = 8000,
        log_level: str = "info") -> None:
    """Serve ``app`` with uvicorn until SIGINT/SIGTERM; SIGTERM drains first: requests
    in flight finish, new ones get 503, then the server exits."""
    import sys
    import threading
    import time

    import uvicorn

    # The event loop and the model workers are threads of one process: a short
    # switch interval lets the loop answer while a worker decodes (default 5 ms).
    sys.setswitchinterval(0.0005)

    config = uvicorn.Config(app, host=host, port=port, log_level=log_level)  # type: ignore[arg-type]

    class DrainingServer(uvicorn.Server):
        def handle_exit(self, sig: int, frame: object) -> None:
            import signal

            state = getattr(getattr(app, "state", None), "aigc", None)
            if sig != signal.SIGTERM or state is None or state.draining:
                super().handle_exit(sig, frame)  # type: ignore[arg-type]
                return
            state.draining = True

            def wait() -> None:
                while state.active > 0:
                    time.sleep(0.05)
                self.should_exit = True

            threading.Thread(target=wait, daemon=True).start()

    DrainingServer(config).run()
