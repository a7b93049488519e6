"""Names an imported image gets on the real node, so a chart pinned by digest finds it."""

from __future__ import annotations

from burstguard.devcluster.localimages import UNPACKED, digest_reference

DIGEST = "sha256:" + "ab" * 32


def test_a_tagged_name_becomes_its_repository_at_the_digest() -> None:
    got = digest_reference("localhost/burstguard:0.1.0", DIGEST)
    assert got == f"localhost/burstguard@{DIGEST}"


def test_a_registry_port_is_not_taken_for_a_tag() -> None:
    name = "registry.local:5000/team/burstguard"
    assert digest_reference(name, DIGEST) == f"{name}@{DIGEST}"
    assert digest_reference(f"{name}:v2", DIGEST) == f"{name}@{DIGEST}"


def test_the_import_output_names_each_image_and_its_manifest_digest() -> None:
    out = f"unpacking localhost/burstguard:0.1.0 ({DIGEST})...done\n"
    assert UNPACKED.findall(out) == [("localhost/burstguard:0.1.0", DIGEST)]
