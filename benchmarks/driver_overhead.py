"""Host-side cost of one acquisition through the real driver over a real pty (simulator, no faults).

    PYTHONPATH=. python benchmarks/driver_overhead.py [N]

Prints the median wall time per acquisition minus the simulated exposure (integration x
averages + the simulator's 50 ms overhead): what the protocol discipline (confirmed
reads, settle checks, CRC queries, polling) costs on a clean line.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time

import numpy as np

from drivers import open_source
from drivers.simulator import AnalyzerServer, ReferenceSet, SimulatedAnalyzer


def main(n: int = 20) -> None:
    grid = np.arange(200.0, 2000.0, 1.0)
    refs = ReferenceSet(grid, ["a"], np.exp(-0.5 * ((grid - 1000) / 5) ** 2)[None, :], "raman")
    device = SimulatedAnalyzer(refs, sample="a", seed=1, time_scale=1.0)
    with tempfile.TemporaryDirectory() as d, AnalyzerServer(device, link=f"{d}/a") as server:
        with open_source(server.url, timeout=1.0) as source:
            times = []
            for _ in range(n):
                t = time.perf_counter()
                source.acquire(integration_ms=100, averages=1)
                times.append(time.perf_counter() - t)
    exposure = (100 + 50) / 1000
    print(f"{n} acquisitions of 100 ms x 1: median {statistics.median(times) * 1000:.0f} ms wall, "
          f"host overhead {(statistics.median(times) - exposure) * 1000:.0f} ms per acquisition")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
