"""``aigc`` with a fault injected: the tests of distributed training run this script (as
torchrun's worker or alone) in place of ``python -m aigc_engine``.

``AIGC_TEST_KILL=RANK:STEPS[:ATTEMPT]``: the process of rank RANK sends itself SIGKILL
right after its STEPS-th optimiser step (in torchrun restart ATTEMPT only, when given),
through torch's global optimiser hook, so no engine code knows about it.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any


def _arm(spec: str) -> None:
    rank, steps, *attempt = (int(v) for v in spec.split(":"))
    if int(os.environ.get("RANK", "0")) != rank:
        return
    if attempt and int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) != attempt[0]:
        return
    from torch.optim.optimizer import register_optimizer_step_post_hook

    count = [0]

    def hook(opt: Any, args: Any, kwargs: Any) -> None:
        count[0] += 1
        if count[0] == steps:
            sys.stderr.write(f"dist_worker: rank {rank} kills itself (SIGKILL) after "
                             f"{steps} optimiser steps\n")
            sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    register_optimizer_step_post_hook(hook)


if __name__ == "__main__":
    if os.environ.get("AIGC_TEST_KILL"):
        _arm(os.environ["AIGC_TEST_KILL"])
    from aigc_engine.cli import main

    sys.argv[0] = "aigc"
    main()
