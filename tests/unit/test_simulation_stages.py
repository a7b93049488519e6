"""The simulated kwok stages: pods become ready only when the fleet says so; Job pods run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from burstguard.simulation import stages


def stage(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "Stage",
        "metadata": {"name": name},
        "spec": spec,
    }


def default_stages() -> list[dict[str, Any]]:
    ready_selector = {
        "matchExpressions": [{"key": ".status.phase", "operator": "In", "values": ["Pending"]}]
    }
    return [
        stage("node-initialize", selector={}),
        stage("pod-ready", selector=ready_selector, next={"statusTemplate": "x"}),
        stage("pod-complete", selector={}, next={"statusTemplate": "y"}),
    ]


def test_pod_ready_also_requires_the_fleets_started_annotation() -> None:
    out = {s["metadata"]["name"]: s for s in stages.simulated(default_stages())}
    expressions = out["pod-ready"]["spec"]["selector"]["matchExpressions"]
    assert expressions[0]["key"] == ".status.phase"
    assert expressions[-1] == {
        "key": '.metadata.annotations["burstguard.io/simulated-start"]',
        "operator": "In",
        "values": ["done"],
    }
    assert out["pod-ready"]["spec"]["next"] == {"statusTemplate": "x"}


def test_job_pods_run_for_the_given_time_or_their_own_annotation() -> None:
    out = {s["metadata"]["name"]: s for s in stages.simulated(default_stages(), run_ms=5000)}
    delay = out["pod-complete"]["spec"]["delay"]
    assert delay["durationMilliseconds"] == 5000
    assert stages.RUN_ANNOTATION in delay["durationFrom"]["expressionFrom"]


def test_node_stages_and_the_input_are_left_alone() -> None:
    original = default_stages()
    out = stages.simulated(original)
    assert out[0] == original[0]
    assert "delay" not in original[2]["spec"]


def test_the_written_file_is_labelled_a_simulation_and_parses_back(tmp_path: Path) -> None:
    source = tmp_path / "kwok-stages.yaml"
    source.write_text(yaml.safe_dump_all(default_stages()))
    target = stages.write(source, tmp_path / "sim.yaml")
    text = target.read_text()
    assert text.startswith("# kwok stages for burstguard's SIMULATED fleet")
    docs = [d for d in yaml.safe_load_all(text) if d]
    assert docs[0]["kind"] == "KwokConfiguration"
    assert [d["metadata"]["name"] for d in docs[1:]] == [
        "node-initialize",
        "pod-ready",
        "pod-complete",
    ]
