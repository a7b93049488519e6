"""Render the chart from tests, so tests deploy exactly what users install.

Integration tests of the operator run it as a local process, so the apiserver must call its
webhook at ``https://127.0.0.1:PORT/...``: the chart's ``webhook.url`` mode renders the very
MutatingWebhookConfiguration users get (rules, failurePolicy, timeout, namespace exclusions,
matchConditions) with only ``clientConfig`` pointing at that URL and trusting the given CA.

    from tests.chart import render
    config = render.webhook_configuration(
        url=f"https://127.0.0.1:{port}/mutate-pods", ca_pem=ca_pem, release="bg-test"
    )
    admissionregistration.create_mutating_webhook_configuration(config)

Or let ``render.registered_webhook(api_client, url=..., ca_pem=...)`` create it for the
duration of a ``with`` block and delete it afterwards (the operator then runs without
``--register-webhook``).

``render.objects(values, ...)`` renders any values for other needs (RBAC, the
ValidatingAdmissionPolicy). A missing helm raises ``tools.MissingToolError`` whose message says
how to build it; tests treat it like missing control-plane binaries (fail in CI, skip elsewhere:
see ``require_tools``).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s_client

from tests.chart import generating, tools

Json = dict[str, Any]


def helm() -> Path:
    """The helm binary (``tools.MissingToolError`` when it is not built)."""
    return tools.locate().helm


def objects(
    values: Mapping[str, Any] | None = None,
    *,
    release: str = "burstguard",
    namespace: str = "burstguard",
    values_files: tuple[Path, ...] = (),
    hooks: bool = True,
    crds: bool = False,
) -> list[Json]:
    """Every object ``helm template`` renders for ``values`` (nested dict, as in values.yaml).

    Renders are cached per arguments (helm takes ~0.3 s a call); each call gets its own copy.
    """
    key = json.dumps(values or {}, sort_keys=True)
    text = _render(
        key,
        release=release,
        namespace=namespace,
        values_files=values_files,
        hooks=hooks,
        crds=crds,
    )
    return generating.documents(text)


@functools.lru_cache(maxsize=64)
def _render(
    values_json: str,
    *,
    release: str,
    namespace: str,
    values_files: tuple[Path, ...],
    hooks: bool,
    crds: bool,
) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(json.loads(values_json), f)
    try:
        return generating.helm_template(
            helm(),
            values_files=(*values_files, Path(f.name)),
            release=release,
            namespace=namespace,
            hooks=hooks,
            crds=crds,
        )
    finally:
        os.unlink(f.name)


def pick(docs: list[Json], kind: str, name: str | None = None) -> Json:
    """The one object of ``kind`` (and ``name``) among ``docs``; ``LookupError`` otherwise."""
    found = [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    if len(found) != 1:
        raise LookupError(f"expected one {kind} {name or ''}, rendered {len(found)}")
    return found[0]


def webhook_configuration(
    *,
    url: str,
    ca_pem: bytes,
    release: str = "burstguard",
    namespace: str = "burstguard",
    values: Mapping[str, Any] | None = None,
) -> Json:
    """The chart's MutatingWebhookConfiguration calling ``url`` and trusting ``ca_pem``.

    ``release`` names it (``<release>`` if it contains "burstguard", else
    ``<release>-burstguard``); ``namespace`` is the release namespace the webhook excludes.
    ``values`` are merged over the URL settings (e.g. ``{"webhook": {"timeoutSeconds": 5}}``).
    """
    merged: Json = {
        "webhook": {"url": url, "caBundle": base64.b64encode(ca_pem).decode()},
        "operator": {"enabled": False},
        "agent": {"enabled": False},
    }
    for key, value in (values or {}).items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    docs = objects(merged, release=release, namespace=namespace, hooks=False)
    return pick(docs, "MutatingWebhookConfiguration")


@contextlib.contextmanager
def registered_webhook(
    api: k8s_client.ApiClient,
    *,
    url: str,
    ca_pem: bytes,
    release: str = "burstguard-test",
    namespace: str = "burstguard",
    values: Mapping[str, Any] | None = None,
) -> Iterator[Json]:
    """The chart's webhook configuration (see ``webhook_configuration``) created in the
    cluster for the duration of the ``with`` block, then deleted. Replaces a stale one of the
    same name (a killed test run)."""
    config = webhook_configuration(
        url=url, ca_pem=ca_pem, release=release, namespace=namespace, values=values
    )
    admission = k8s_client.AdmissionregistrationV1Api(api)
    name = config["metadata"]["name"]
    with contextlib.suppress(k8s_client.ApiException):
        admission.delete_mutating_webhook_configuration(name)
    admission.create_mutating_webhook_configuration(config)
    try:
        yield config
    finally:
        with contextlib.suppress(k8s_client.ApiException):
            admission.delete_mutating_webhook_configuration(name)


def require_tools() -> tools.Tools:
    """The chart tools, or fail (CI) / skip (elsewhere) with the hint to build them."""
    try:
        return tools.locate()
    except tools.MissingToolError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must have the chart tools built: {exc}")
        pytest.skip(str(exc))
