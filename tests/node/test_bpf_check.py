"""``make bpf-check`` on this machine's kernel: every script parses, the supported ones compile."""

from __future__ import annotations

import pathlib
import subprocess

REPO = pathlib.Path(__file__).parent.parent.parent


def test_make_bpf_check_passes_and_compiles_every_tracepoint_script(bpftrace: str) -> None:
    run = subprocess.run(
        ["make", "-s", "bpf-check"],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    verdicts = dict(line.split()[1:3] for line in run.stdout.splitlines() if line.startswith("ok"))
    for name in ("mount_latency", "reclaim", "shrinker_lock_6_7"):
        assert verdicts[name] == "compiled"
    assert "shrinker_lock" in verdicts
    assert verdicts["(combined)"] == "compiled:"  # the one program the agent runs
