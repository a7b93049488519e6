"""The MutatingWebhookConfiguration that sends pod CREATEs to burstguard's webhook.

In a cluster the Helm chart ships this object (service reference); for a control plane that
runs the operator on the host (tests, development) the operator registers itself with a
``url`` and the CA bundle it made, as envtest does. Either way the settings are the
contract: CREATE of pods only, ``failurePolicy: Ignore`` and a short timeout (pod creation
never depends on burstguard), ``sideEffects: None`` (dry runs are safe), and namespaces
excluded by name (kube-system and the release namespace).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any, Final

from burstguard.k8s import apiclient

PATH: Final = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
NAME: Final = "burstguard"
WEBHOOK_NAME: Final = "pods.burstguard.io"
DEFAULT_TIMEOUT_S: Final = 2
DEFAULT_CALLS: Final = 2
"""Identical webhook entries (see ``call_names``)."""
"""Webhook call timeout, seconds (the apiserver then admits the pod ungated)."""


def manifest(
    *,
    url: str,
    ca_pem: bytes,
    excluded_namespaces: Sequence[str],
    timeout_s: int = DEFAULT_TIMEOUT_S,
    calls: int = DEFAULT_CALLS,
) -> dict[str, Any]:
    """The configuration object for a URL-addressed webhook."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": NAME, "labels": {"app.kubernetes.io/name": "burstguard"}},
        "webhooks": [
            {
                "name": name,
                "admissionReviewVersions": ["v1"],
                "clientConfig": {"url": url, "caBundle": base64.b64encode(ca_pem).decode()},
                "rules": [
                    {
                        "operations": ["CREATE"],
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "resources": ["pods"],
                        "scope": "Namespaced",
                    }
                ],
                "failurePolicy": "Ignore",
                "matchPolicy": "Equivalent",
                "sideEffects": "None",
                "timeoutSeconds": timeout_s,
                "reinvocationPolicy": "IfNeeded",
                "namespaceSelector": {
                    "matchExpressions": [
                        {
                            "key": "kubernetes.io/metadata.name",
                            "operator": "NotIn",
                            "values": sorted(excluded_namespaces),
                        }
                    ]
                },
            }
            for name in call_names(calls)
        ],
    }


def call_names(calls: int) -> list[str]:
    """Names of the ``calls`` identical webhook entries (the chart's ``webhook.calls``).

    Registering the webhook twice makes a call lost with a replica killed mid-request (the
    apiserver fails open and does not retry a POST on a reset connection) be made again on a
    fresh connection; the gate patch is idempotent, so the second call of a gated pod is a
    no-op.
    """
    return [
        WEBHOOK_NAME if i == 0 else WEBHOOK_NAME.replace("pods.", f"pods-{i + 1}.")
        for i in range(calls)
    ]


async def ensure(api: apiclient.Api, body: dict[str, Any]) -> None:
    """Create the configuration, or replace it when it exists."""
    try:
        await api.request("POST", PATH, body=body)
        return
    except apiclient.ApiError as exc:
        if exc.status != 409:
            raise
    current = await api.request("GET", f"{PATH}/{NAME}")
    body = {
        **body,
        "metadata": {**body["metadata"], "resourceVersion": current["metadata"]["resourceVersion"]},
    }
    await api.request("PUT", f"{PATH}/{NAME}", body=body)


async def remove(api: apiclient.Api) -> None:
    """Delete the configuration (absent is fine)."""
    try:
        await api.request("DELETE", f"{PATH}/{NAME}")
    except apiclient.ApiError as exc:
        if exc.status != 404:
            raise
