"""Start-up time of the light CLI commands against a bare interpreter, in one run.

    python benchmarks/cli_startup.py [--repeat 15]

Prints the median wall time of `python -c pass` (the floor any Python CLI pays),
`python -c "import click"` (the CLI framework alone), `aigc --help`,
`aigc generators` and `aigc plugins`, and each one's ratio to the floor.
Target (issue 2): `aigc generators` well under 0.5 s on this machine.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time


def median_seconds(cmd: list[str], repeat: int) -> float:
    subprocess.run(cmd, capture_output=True, check=True)  # warm the file cache
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    aigc = shutil.which("aigc")
    base = [aigc] if aigc else [sys.executable, "-m", "aigc_engine"]
    cases = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import click'": [sys.executable, "-c", "import click"],
        "aigc --help": [*base, "--help"],
        "aigc generators": [*base, "generators"],
        "aigc plugins": [*base, "plugins"],
    }
    floor = None
    print(f"{'command':<28} {'median s':>9} {'x floor':>8}")
    for name, cmd in cases.items():
        seconds = median_seconds(cmd, args.repeat)
        floor = floor or seconds
        print(f"{name:<28} {seconds:9.3f} {seconds / floor:8.2f}")


if __name__ == "__main__":
    main()
