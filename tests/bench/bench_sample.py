"""Benchmark: CPU cost of one full node sample (read + parse every /proc file + headroom + rates).

Prints the median and p90 CPU time per sample in µs over N samples of this machine's /proc,
the zoneinfo and vmstat parsers old (line parser) against new (fast path, line parser as the
fallback) on this machine's /proc and on every fixture, as a ratio measured in one run with
the two interleaved, and the wall time of ``burstguard doctor`` end to end.
Run: ``.venv/bin/python tests/bench/bench_sample.py [--parsers-only]``.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

from burstguard.core import headroom, rates
from burstguard.procfs import snapshot, vmstat, zoneinfo

FIXTURES = Path(__file__).parent.parent / "fixtures" / "proc"
PARSERS = {
    "zoneinfo": (zoneinfo.parse_lines, zoneinfo.parse),
    "vmstat": (vmstat.parse_lines, vmstat.parse),
}


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


def parse_us(parse: object, text: str, reps: int) -> float:
    """CPU µs of one parse, averaged over ``reps`` calls."""
    assert callable(parse)
    t0 = time.process_time_ns()
    for _ in range(reps):
        parse(text)
    return (time.process_time_ns() - t0) / reps / 1000


def parser_ratios(rounds: int = 41, reps: int = 50) -> None:
    """Old vs new per file, interleaved round by round so both see the same load."""
    sources = [("/proc (this machine)", Path("/proc"))]
    sources += [(f"fixture {d.name}", d) for d in sorted(FIXTURES.iterdir()) if d.is_dir()]
    print(f"{'file':<44} {'old µs':>8} {'new µs':>8} {'old/new':>8}")
    for label, root in sources:
        for name, (old, new) in PARSERS.items():
            path = root / name
            if not path.is_file():
                continue
            text = path.read_text()
            assert old(text) == new(text), f"{path}: fast and line parsers disagree"
            olds, news = [], []
            for _ in range(rounds):
                olds.append(parse_us(old, text, reps))
                news.append(parse_us(new, text, reps))
            o, n = statistics.median(olds), statistics.median(news)
            print(f"{label + ' ' + name:<44} {o:8.1f} {n:8.1f} {o / n:7.2f}x")


def main() -> None:
    parser_ratios()
    if "--parsers-only" in sys.argv:
        return
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
