"""The agent's calls to the API server: its own Node's summary, condition, requests, Events.

The agent is a small threaded loop (sampling at 4 Hz, a handful of writes per minute), so it
uses the synchronous ``kubernetes`` client rather than ``kubernetes.aio``: no event loop to
run next to the sampler and the bpftrace reader threads, and one blocking call per publish
is well inside the loop's budget. Objects are sent and read as plain dicts.

Writes touch only fields burstguard owns, so they never fight kubelet or other writers:

* the summary and the acknowledgement are annotations, patched under
  ``metadata.annotations`` (maps merge key by key, so other annotations stay);
* the ``BurstguardHeadroom`` condition goes to ``nodes/status`` as a strategic merge patch:
  Node conditions merge by ``type``, so kubelet's own conditions stay untouched.

A ValidatingAdmissionPolicy (``deploy/agent/node-policy.yaml``) lets the agent's service
account patch only the Node it runs on; the agent therefore needs no per-node RBAC.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any, Final

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch
from kubernetes.client import exceptions as k8s_exceptions

from burstguard.api import names, times
from burstguard.k8s import nodetypes

EVENT_NAMESPACE: Final = "default"
"""Events about cluster-scoped objects (Nodes) live in ``default``, as kubelet's do."""
COMPONENT: Final = "burstguard-agent"


def connect(kubeconfig: str | None = None) -> k8s_client.ApiClient:
    """An API client from ``kubeconfig``, else the in-cluster service account."""
    loader: Any = k8s_config  # the kubernetes package ships no type hints
    try:
        if kubeconfig:
            api: k8s_client.ApiClient = loader.new_client_from_config(config_file=kubeconfig)
            return api
        loader.load_incluster_config()
        return k8s_client.ApiClient()
    except (k8s_config.ConfigException, OSError) as exc:
        raise nodetypes.NodeApiError(f"cannot load Kubernetes credentials: {exc}") from exc


class NodeWriter:
    """Reads and writes one Node on behalf of its agent."""

    def __init__(self, api_client: k8s_client.ApiClient, node_name: str) -> None:
        self.node_name = node_name
        self._core = k8s_client.CoreV1Api(api_client)

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs, _request_timeout=10)
        except k8s_exceptions.ApiException as exc:
            raise nodetypes.NodeApiError(
                f"{what} node {self.node_name}: HTTP {exc.status} {exc.reason}: "
                f"{(exc.body or '')[:300]}",
                exc.status,
            ) from exc
        except Exception as exc:  # urllib3 connection errors and the like
            raise nodetypes.NodeApiError(f"{what} node {self.node_name}: {exc}") from exc

    def annotations(self) -> dict[str, str]:
        """The Node's annotations (to read the preparation request)."""
        node = self._call("read", self._core.read_node, self.node_name)
        return dict(node.metadata.annotations or {})

    def watch_annotations(
        self,
        on_change: Callable[[dict[str, str]], None],
        stop: threading.Event,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        """Call ``on_change`` with the Node's annotations on every change until ``stop``.

        One watch on this Node alone (field selector on its name): a request reaches the
        agent within a round trip, at no polling cost to the API server. Broken watches are
        restarted after a short pause; errors go to ``on_error``.
        """
        while not stop.is_set():
            watch_module: Any = k8s_watch
            watcher: Any = watch_module.Watch()
            try:
                for event in watcher.stream(
                    self._core.list_node,
                    field_selector=f"metadata.name={self.node_name}",
                    timeout_seconds=60,
                    _request_timeout=90,
                ):
                    obj = event.get("object")
                    metadata = getattr(obj, "metadata", None)
                    if metadata is not None:
                        on_change(dict(metadata.annotations or {}))
                    if stop.is_set():
                        watcher.stop()
                        break
            except Exception as exc:  # watch errors are retried, never fatal
                if on_error is not None:
                    on_error(f"watch node {self.node_name}: {exc}")
                stop.wait(2.0)

    def set_annotations(self, values: dict[str, str]) -> None:
        """Patch the given annotations and nothing else (maps merge key by key)."""
        body = {"metadata": {"annotations": values}}
        self._call("annotate", self._core.patch_node, self.node_name, body)

    def set_condition(self, condition: nodetypes.Condition) -> None:
        """Strategic-merge-patch the ``BurstguardHeadroom`` condition into ``nodes/status``."""
        body = {
            "status": {
                "conditions": [
                    {
                        "type": names.HEADROOM_CONDITION,
                        "status": "True" if condition.status else "False",
                        "reason": condition.reason,
                        "message": condition.message,
                        "lastTransitionTime": times.rfc3339(condition.last_transition),
                        "lastHeartbeatTime": times.rfc3339(condition.heartbeat),
                    }
                ]
            }
        }
        self._call("patch status of", self._core.patch_node_status, self.node_name, body)

    def publish(self, summary_json: str, condition: nodetypes.Condition) -> None:
        """Write the summary annotation, then the condition."""
        self.set_annotations({names.SUMMARY_ANNOTATION: summary_json})
        self.set_condition(condition)

    def event(self, reason: str, message: str, warning: bool = False, now: float = 0.0) -> None:
        """Record an Event on the Node (``kubectl describe node`` shows it)."""
        stamp = times.rfc3339(now)
        body = {
            "metadata": {"generateName": f"{self.node_name}.burstguard-"},
            "involvedObject": {"kind": "Node", "name": self.node_name, "uid": self.node_name},
            "reason": reason,
            "message": message[:1024],
            "type": "Warning" if warning else "Normal",
            "source": {"component": COMPONENT, "host": self.node_name},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        self._call("record event on", self._core.create_namespaced_event, EVENT_NAMESPACE, body)


def dumps(value: Any) -> str:
    """Compact JSON for annotation values."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True)
