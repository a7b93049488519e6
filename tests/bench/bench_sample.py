"""Benchmark: CPU cost of one full node sample (read + parse every /proc file + headroom + rates).

Prints the median and p90 CPU time per sample in µs over N samples of this machine's /proc,
and the wall time of ``burstguard doctor`` end to end.
Run: ``.venv/bin/python tests/bench/bench_sample.py``.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

from burstguard.core import headroom, rates
from burstguard.procfs import snapshot


def sample_cpu_us(n: int = 500, proc_root: str = "/proc") -> list[float]:
    prev = snapshot.read(proc_root, time.monotonic())
    out = []
    for _ in range(n):
        t0 = time.process_time_ns()
        snap = snapshot.read(proc_root, time.monotonic())
        headroom.assess(snap)
        rates.reclaim_rates(prev.vmstat, snap.vmstat, snap.taken_at - prev.taken_at)
        out.append((time.process_time_ns() - t0) / 1000)
        prev = snap
    return out


def main() -> None:
    costs = sorted(sample_cpu_us())
    print(
        f"full sample CPU: median {statistics.median(costs):.0f} µs, "
        f"p90 {costs[int(len(costs) * 0.9)]:.0f} µs over {len(costs)} samples"
    )
    exe = Path(sys.executable).parent / "burstguard"
    walls = []
    for _ in range(3):
        t0 = time.monotonic()
        subprocess.run([str(exe), "doctor", "-o", "json"], capture_output=True, check=False)
        walls.append(time.monotonic() - t0)
    print(
        f"burstguard doctor (2 s window) wall time: median {statistics.median(walls):.2f} s "
        f"(min {min(walls):.2f}, max {max(walls):.2f})"
    )


if __name__ == "__main__":
    main()
