"""Small builders for the objects cluster tests create (instead of raw dicts in each test)."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class PodBuilder:
    """A pod with one container; kwok makes it Running once it is bound to a kwok node."""

    def __init__(self, name: str) -> None:
        self.pod: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "burst"}},
            "spec": {
                "containers": [
                    {
                        "name": "main",
                        "image": "registry.k8s.io/pause:3.10",
                        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                    }
                ],
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 0,
            },
        }

    def node_selector(self, selector: Mapping[str, str]) -> PodBuilder:
        self.pod["spec"]["nodeSelector"] = dict(selector)
        return self

    def gates(self, *gates: str) -> PodBuilder:
        self.pod["spec"]["schedulingGates"] = [{"name": g} for g in gates]
        return self

    def required_node_affinity(self, key: str, operator: str, *values: str) -> PodBuilder:
        expression: dict[str, Any] = {"key": key, "operator": operator}
        if values:
            expression["values"] = list(values)
        self.pod["spec"]["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [expression]}]
                }
            }
        }
        return self

    def service_account(self, name: str) -> PodBuilder:
        self.pod["spec"]["serviceAccountName"] = name
        return self

    def labels(self, **labels: str) -> PodBuilder:
        self.pod["metadata"]["labels"] = dict(labels)
        return self

    def build(self) -> dict[str, Any]:
        return copy.deepcopy(self.pod)


class JobBuilder:
    """A Job whose pods kwok runs and then completes (kwok's pod-complete stage)."""

    def __init__(self, name: str, pods: int) -> None:
        pod = PodBuilder("unused").build()
        template = {"metadata": {"labels": pod["metadata"]["labels"]}, "spec": pod["spec"]}
        self.job: dict[str, Any] = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name},
            "spec": {
                "completions": pods,
                "parallelism": pods,
                "backoffLimit": 0,
                "template": template,
            },
        }

    def node_selector(self, selector: Mapping[str, str]) -> JobBuilder:
        self.job["spec"]["template"]["spec"]["nodeSelector"] = dict(selector)
        return self

    def build(self) -> dict[str, Any]:
        return copy.deepcopy(self.job)


def wait_for(
    what: str, probe: Callable[[], T | None], *, timeout_s: float = 60.0, every_s: float = 0.2
) -> T:
    """Poll ``probe`` until it returns something truthy; fail the test with ``what`` otherwise."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(every_s)
