"""The webhook configuration the operator registers keeps pod creation independent of it."""

from __future__ import annotations

import base64

from burstguard.k8s import webhookconfig


def test_the_webhook_fails_open_quickly_on_pod_creates_only_outside_excluded_namespaces() -> None:
    body = webhookconfig.manifest(
        url="https://127.0.0.1:9443/mutate-pods",
        ca_pem=b"PEM",
        excluded_namespaces=["kube-system", "burstguard"],
    )
    hook, again = body["webhooks"]
    assert (hook["name"], again["name"]) == ("pods.burstguard.io", "pods-2.burstguard.io")
    assert {**again, "name": hook["name"]} == hook  # the same call, made twice
    assert hook["failurePolicy"] == "Ignore"
    assert hook["timeoutSeconds"] <= 5
    assert hook["sideEffects"] == "None"
    assert hook["rules"] == [
        {
            "operations": ["CREATE"],
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "resources": ["pods"],
            "scope": "Namespaced",
        }
    ]
    (expr,) = hook["namespaceSelector"]["matchExpressions"]
    assert expr["operator"] == "NotIn" and expr["values"] == ["burstguard", "kube-system"]
    assert base64.b64decode(hook["clientConfig"]["caBundle"]) == b"PEM"
