"""How the operator reads the agent's annotations on a Node into its records."""

from __future__ import annotations

from typing import Any

from burstguard.api import names, preparationack
from burstguard.k8s import nodeviews

ACK = preparationack.PrepareAck(
    id="p-1",
    done_at=12.0,
    dry_run=False,
    bytes_wanted=10,
    freed_bytes=20,
    headroom_before_bytes=0,
    headroom_after_bytes=20,
    actions=(preparationack.ActionResult("drop_caches", "1", "done", freed_bytes=20),),
)


def node_object(name: str, **annotations: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "annotations": annotations}, "status": {}}


def test_the_agents_acknowledgement_is_decoded_into_the_node_record() -> None:
    store = nodeviews.NodeStore()
    store.apply(
        "ADDED", node_object("n", **{names.PREPARE_ACK_ANNOTATION: preparationack.encode(ACK)})
    )
    assert store.nodes["n"].ack == ACK and store.nodes["n"].ack_error == ""


def test_a_malformed_acknowledgement_is_kept_as_an_error_and_no_ack() -> None:
    store = nodeviews.NodeStore()
    store.apply("ADDED", node_object("n", **{names.PREPARE_ACK_ANNOTATION: "{not json"}))
    record = store.nodes["n"]
    assert record.ack is None and "not JSON" in record.ack_error
    store.apply(
        "MODIFIED", node_object("n", **{names.PREPARE_ACK_ANNOTATION: preparationack.encode(ACK)})
    )
    assert store.nodes["n"].ack == ACK


def test_a_removed_acknowledgement_leaves_no_ack() -> None:
    store = nodeviews.NodeStore()
    store.apply(
        "ADDED", node_object("n", **{names.PREPARE_ACK_ANNOTATION: preparationack.encode(ACK)})
    )
    store.apply("MODIFIED", node_object("n"))
    assert store.nodes["n"].ack is None
