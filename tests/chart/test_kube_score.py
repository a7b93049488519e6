"""kube-score on every ci values render: no CRITICAL finding that values.yaml does not accept.

kube-score (zegl/kube-score, built from the Go module proxy by .ci/setup.d/36-kube-score.sh)
is an outside opinion on the rendered objects: probes, resources, security contexts,
NetworkPolicies. Each CRITICAL finding is either fixed in the chart or accepted, with its
reason, on a ``# @kube-score-accept <check id>: <summary> -- <reason>`` line of values.yaml,
so an acceptance is reviewed where the values it concerns live.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.chart import generating, tools
from tests.chart.conftest import CI_VALUES

ACCEPT = re.compile(
    r"^# @kube-score-accept (?P<check>[a-z0-9-]+): (?P<summary>.+?) -- (?P<why>.+)$"
)
CRITICAL = 1
"""kube-score's grade of a CRITICAL check (WARNING is 5, OK 10)."""


def accepted() -> dict[tuple[str, str], str]:
    """(check id, finding summary) -> reason, from values.yaml."""
    text = (generating.CHART / "values.yaml").read_text()
    found = {}
    for line in text.splitlines():
        match = ACCEPT.match(line)
        if match:
            found[match["check"], match["summary"]] = match["why"]
    return found


def kube_score() -> Path:
    try:
        return tools.kube_score()
    except tools.MissingToolError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must have kube-score built: {exc}")
        pytest.skip(str(exc))


def critical(binary: Path, manifest: str) -> list[tuple[str, str, str]]:
    """(object, check id, summary) of every CRITICAL, not skipped, finding."""
    done = subprocess.run(
        [str(binary), "score", "-o", "json", "-"],
        input=manifest,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode in {0, 1}, done.stderr  # 1: findings (listed in the JSON)
    out = []
    for obj in json.loads(done.stdout):
        for check in obj["checks"]:
            if check["grade"] != CRITICAL or check.get("skipped"):
                continue
            for comment in check.get("comments") or [{"summary": ""}]:
                out.append((obj["object_name"], check["check"]["id"], comment["summary"]))
    return out


def test_every_acceptance_gives_a_reason() -> None:
    reasons = accepted()
    assert reasons, "values.yaml has no @kube-score-accept lines (or the format changed)"
    for (check, summary), why in reasons.items():
        assert len(why.split()) >= 5, f"{check}: {summary}: give a reason"


@pytest.mark.parametrize("values", CI_VALUES, ids=[p.name for p in CI_VALUES])
def test_kube_score_finds_nothing_critical_the_chart_does_not_accept(
    renders: dict[str, str], values: Path
) -> None:
    findings = critical(kube_score(), renders[values.name])
    reasons = accepted()
    print(f"\n{values.name}: {len(findings)} CRITICAL findings, all accepted unless listed below")
    unaccepted = [f for f in findings if (f[1], f[2]) not in reasons]
    assert not unaccepted, "\n".join(f"{o}: [{c}] {s}" for o, c, s in unaccepted)


def test_an_unaccepted_finding_fails() -> None:
    """The check above can fail: a container without probes or limits is reported."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bare", "namespace": "x"},
        "spec": {"containers": [{"name": "c", "image": "example.com/c:1"}]},
    }
    findings = critical(kube_score(), json.dumps(pod))
    reasons = accepted()
    assert [f for f in findings if (f[1], f[2]) not in reasons]


def test_every_acceptance_is_still_needed_by_some_ci_render(renders: dict[str, str]) -> None:
    """An acceptance no finding uses any more is stale (the chart was fixed): remove it, so
    the list in values.yaml stays the list of what the chart really does."""
    binary = kube_score()
    used = {(c, s) for text in renders.values() for _, c, s in critical(binary, text)}
    stale = sorted(set(accepted()) - used)
    assert not stale, "\n".join(f"no render needs: [{c}] {s}" for c, s in stale)
