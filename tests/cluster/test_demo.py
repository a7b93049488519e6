"""``burstguard demo --cronjob`` end to end on a small fleet: its own control plane, the
simulated fleet, the real operator; the guarded run uses the chart's default policy values,
and the CronJob runs show the nodes prepared leadTime before the schedule fires.

4 nodes and 40 pods keep the bursts short on the 2-core build machine; the three CronJob runs
each wait for their schedule's minute (45-105 s), so the test takes about five minutes. The
command is run as a user runs it (a subprocess), and the test reads the report it wrote.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from burstguard.api import policy as policy_api
from burstguard.devcluster import binaries
from burstguard.simulation import demoing


def test_the_demo_runs_every_burst_and_prepares_the_cronjob_ahead_only_with_a_lead_time(
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
            "--cronjob",
            f"--out={out}",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    body = json.loads((out / "report.json").read_text())
    assert body["simulated"] is True
    runs = {r["name"]: r for r in body["runs"]}
    assert set(runs) == {
        demoing.UNGUARDED,
        demoing.GUARDED,
        demoing.CRON_UNGUARDED,
        demoing.CRON_GUARDED,
        demoing.CRON_AHEAD,
    }
    assert all(r["completed"] for r in runs.values())
    assert all(r["makespan_ratio"] is not None for r in runs.values())
    ahead, plain = runs[demoing.CRON_AHEAD], runs[demoing.CRON_GUARDED]
    assert ahead["launched"].startswith("CronJob ")
    # Every node was asked, from the forecast, a leadTime before the fire (5 s of slack for
    # the operator's 1 s forecast cadence and the watch); without a lead time, none was.
    assert ahead["prepared_before_fire"] == 4
    assert ahead["prepared_lead_s"] >= demoing.LEAD_TIME_S - 5
    assert ahead["prepared_lead_s"] <= demoing.LEAD_TIME_S + 1
    assert plain["prepared_before_fire"] == 0
    assert runs[demoing.CRON_UNGUARDED]["prepared_before_fire"] == 0
    assert any(g.startswith(("goal met", "goal MISSED")) for g in body["goals"])
    labels = {p["run"]: p["label"] for p in body["policies"]}
    assert labels[demoing.CRON_AHEAD] == demoing.AHEAD_LABEL
    policy = next(p for p in body["policies"] if p["run"] == demoing.GUARDED)
    assert policy["label"] == demoing.DEFAULTS_LABEL and policy["served"]
    spec = policy_api.parse({"metadata": {"name": "x"}, "spec": policy["spec"]}).spec
    assert spec.enforcing
    assert spec.pacing == policy_api.Pacing()
    assert spec.headroom == policy_api.HeadroomRules()
    assert runs[demoing.GUARDED]["max_starting_per_node"] <= spec.pacing.max_starting_per_node
    assert policy["agent"]["dry_run"] is True
    assert "SIMULATION" in done.stdout
