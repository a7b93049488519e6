"""The chart's image and host-network values: no registry the project does not control.

The default image is the local name ``make image`` tags, so nothing is pulled from a name
someone else could register; ``image.digest`` pins it; an empty repository fails the render
with a message that says what to do. ``hostNetwork`` puts every burstguard pod in the node's
network namespace and points the in-cluster client at an explicit apiserver address.
"""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from tests.chart import generating, render, tools

Json = dict[str, Any]
DIGEST = "sha256:" + "ab" * 32


def pod_specs(docs: list[Json]) -> dict[str, Json]:
    """Kind -> pod spec of the operator Deployment, agent DaemonSet and release-hook Job."""
    return {
        kind: render.pick(docs, kind)["spec"]["template"]["spec"]
        for kind in ("Deployment", "DaemonSet", "Job")
    }


def images(docs: list[Json]) -> set[str]:
    return {c["image"] for spec in pod_specs(docs).values() for c in spec["containers"]}


def project_version() -> str:
    with (tools.REPO / "pyproject.toml").open("rb") as f:
        return str(tomllib.load(f)["project"]["version"])


def test_the_default_image_is_the_local_name_make_image_tags() -> None:
    render.require_tools()
    assert images(render.objects()) == {f"localhost/burstguard:{project_version()}"}


def test_a_digest_pins_the_image_and_replaces_the_tag() -> None:
    render.require_tools()
    docs = render.objects({"image": {"digest": DIGEST, "tag": "ignored"}})
    assert images(docs) == {f"localhost/burstguard@{DIGEST}"}


def test_a_malformed_digest_is_refused_by_the_schema() -> None:
    helm = render.require_tools().helm
    with pytest.raises(generating.HelmError, match="digest"):
        generating.helm_template(helm, set_values={"image.digest": "latest"})


def test_an_empty_repository_fails_the_render_and_says_how_to_get_an_image() -> None:
    helm = render.require_tools().helm
    with pytest.raises(generating.HelmError, match="make image"):
        generating.helm_template(helm, set_values={"image.repository": ""})


def test_host_network_puts_every_pod_on_the_node_and_points_it_at_the_apiserver() -> None:
    render.require_tools()
    docs = render.objects({"hostNetwork": {"enabled": True, "apiServerHost": "127.0.0.1"}})
    for kind, spec in pod_specs(docs).items():
        assert spec.get("hostNetwork") is True, kind
        assert spec["dnsPolicy"] == "ClusterFirstWithHostNet", kind
        env = {e["name"]: e.get("value") for e in spec["containers"][0].get("env", [])}
        assert env["KUBERNETES_SERVICE_HOST"] == "127.0.0.1", kind
        assert env["KUBERNETES_SERVICE_PORT"] == "6443", kind


def test_with_host_network_an_operator_rollout_stops_a_pod_before_starting_its_successor() -> None:
    """A surge pod would ask for the host ports its predecessor holds: on one node it stays
    Pending and the rollout never ends (seen on real-0)."""
    render.require_tools()
    on = render.pick(render.objects({"hostNetwork": {"enabled": True}}), "Deployment")
    off = render.pick(render.objects(), "Deployment")
    assert on["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 1, "maxSurge": 0}
    assert off["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}


def test_by_default_pods_use_their_own_network_and_the_kubernetes_service() -> None:
    render.require_tools()
    for kind, spec in pod_specs(render.objects()).items():
        assert "hostNetwork" not in spec, kind
        names = {e["name"] for e in spec["containers"][0].get("env", [])}
        assert "KUBERNETES_SERVICE_HOST" not in names, kind
