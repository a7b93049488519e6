"""An identity for an agent run as a host process: its RBAC, and a token bound to a pod.

The agent publishes through the own-Node admission policy, which reads the node-name claim
of a service-account token bound to a pod on that node. A host-process agent (the node
benchmark's, before the chart's DaemonSet runs there) gets the same claim from a holder pod
pinned to the node whose image is never pulled (``imagePullPolicy: Never`` with an image that
does not exist): the pod object exists, no container runs, no registry is asked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from burstguard.k8s import apiclient

_ADMISSION: Final = "/apis/admissionregistration.k8s.io/v1"
PATHS: Final = {
    "ServiceAccount": "/api/v1/namespaces/{ns}/serviceaccounts",
    "ClusterRole": "/apis/rbac.authorization.k8s.io/v1/clusterroles",
    "ClusterRoleBinding": "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
    "Role": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
    "RoleBinding": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
    "ValidatingAdmissionPolicy": f"{_ADMISSION}/validatingadmissionpolicies",
    "ValidatingAdmissionPolicyBinding": f"{_ADMISSION}/validatingadmissionpolicybindings",
}
HOLDER_IMAGE: Final = "localhost/burstguard/token-holder:never-pulled"


async def ensure(api: apiclient.Api, namespace: str, docs: Iterable[Mapping[str, Any]]) -> None:
    """Create each object (ServiceAccounts in ``namespace``; Roles and RoleBindings in their
    own namespace, e.g. Events in ``default``); existing ones are fine."""
    for doc in docs:
        body: dict[str, Any] = dict(doc)
        target = namespace
        if body["kind"] == "ServiceAccount":
            body["metadata"] = {**body["metadata"], "namespace": namespace}
        if body["kind"] in ("Role", "RoleBinding"):
            target = str(body["metadata"].get("namespace") or namespace)
        if body["kind"] in ("ClusterRoleBinding", "RoleBinding"):
            body["subjects"] = [{**s, "namespace": namespace} for s in body["subjects"]]
        try:
            await api.request("POST", PATHS[body["kind"]].format(ns=target), body=body)
        except apiclient.ApiError as exc:
            if exc.status != 409:
                raise


async def bound_token(
    api: apiclient.Api, namespace: str, service_account: str, node: str, seconds: int = 7200
) -> str:
    """A token of ``service_account`` bound to a holder pod on ``node``."""
    pod = await api.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/pods",
        body={
            "metadata": {"generateName": "agent-identity-"},
            "spec": {
                "nodeName": node,
                "serviceAccountName": service_account,
                "tolerations": [{"operator": "Exists"}],
                "containers": [{"name": "hold", "image": HOLDER_IMAGE, "imagePullPolicy": "Never"}],
            },
        },
    )
    meta = pod["metadata"]
    answer = await api.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token",
        body={
            "spec": {
                "expirationSeconds": seconds,
                "boundObjectRef": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": meta["name"],
                    "uid": meta["uid"],
                },
            }
        },
    )
    return str(answer["status"]["token"])


async def node_ready(api: apiclient.Api, node: str) -> tuple[bool, Mapping[str, Any]]:
    """Whether ``node`` exists and is Ready, and its object ({} when missing)."""
    obj = await api.get_or_none(f"/api/v1/nodes/{node}")
    if obj is None:
        return False, {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (obj.get("status") or {}).get("conditions") or []
    )
    return ready, obj
