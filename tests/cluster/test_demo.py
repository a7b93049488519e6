"""``burstguard demo`` end to end on a small fleet: its own control plane, the simulated
fleet, the real operator; the guarded run uses the chart's default policy values.

4 nodes and 40 pods keep it near a minute on the 2-core build machine; the command is run
as a user runs it (a subprocess), and the test reads the report it wrote.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from burstguard.api import policy as policy_api
from burstguard.devcluster import binaries
from burstguard.simulation import demoing


def test_the_demo_runs_both_bursts_and_reports_the_chart_defaults_it_ran(
    tmp_path: Path, control_plane_binaries: binaries.Binaries
) -> None:
    out = tmp_path / "demo"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "burstguard.cli.main",
            "demo",
            "--nodes=4",
            "--pods=40",
            "--run-seconds=5",
            f"--out={out}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    body = json.loads((out / "report.json").read_text())
    assert body["simulated"] is True
    runs = {r["name"]: r for r in body["runs"]}
    assert set(runs) == {demoing.UNGUARDED, demoing.GUARDED}
    assert all(r["completed"] for r in runs.values())
    [policy] = body["policies"]
    assert policy["label"] == demoing.DEFAULTS_LABEL and policy["served"]
    spec = policy_api.parse({"metadata": {"name": "x"}, "spec": policy["spec"]}).spec
    assert spec.enforcing
    assert spec.pacing == policy_api.Pacing()
    assert spec.headroom == policy_api.HeadroomRules()
    assert runs[demoing.GUARDED]["max_starting_per_node"] <= spec.pacing.max_starting_per_node
    assert policy["agent"]["dry_run"] is True
    assert "SIMULATION" in done.stdout
