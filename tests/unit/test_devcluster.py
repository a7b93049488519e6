"""The local control plane's pure parts: pinned versions, certificates, binaries lookup."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from burstguard.devcluster import binaries, cluster, pki

VERSIONS_ENV = Path(__file__).parents[1] / "cluster" / "kube" / "versions.env"


def _pinned() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in VERSIONS_ENV.read_text().splitlines())
    return {k: v for k, v in (p for p in pairs if len(p) == 2) if not k.startswith("#")}


def test_the_python_launcher_looks_for_the_version_the_go_build_pins() -> None:
    assert _pinned()["KUBE_VERSION"] == binaries.KUBE_VERSION


@pytest.fixture(scope="module")
def ca() -> pki.KeyPair:
    return pki.new_ca()


class TestCertificates:
    def test_a_serving_certificate_is_signed_by_the_ca_for_the_loopback_names(
        self, ca: pki.KeyPair
    ) -> None:
        leaf = x509.load_pem_x509_certificate(
            pki.issue(ca, "webhook", hosts=pki.LOOPBACK_HOSTS, server=True).cert_pem
        )
        leaf.verify_directly_issued_by(x509.load_pem_x509_certificate(ca.cert_pem))
        sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
        assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
        usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(usages) == [ExtendedKeyUsageOID.SERVER_AUTH]

    def test_a_client_certificate_names_the_user_in_cn_and_the_groups_in_o(
        self, ca: pki.KeyPair
    ) -> None:
        pair = pki.issue(ca, "alice", organizations=["system:masters", "dev"], client=True)
        subject = x509.load_pem_x509_certificate(pair.cert_pem).subject
        assert [a.value for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)] == ["alice"]
        assert [a.value for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == [
            "system:masters",
            "dev",
        ]

    def test_private_keys_are_written_readable_by_the_owner_only(
        self, ca: pki.KeyPair, tmp_path: Path
    ) -> None:
        files = pki.write(ca, tmp_path, "ca")
        assert files.key.stat().st_mode & 0o777 == 0o600
        assert pki.read(files) == ca


class TestBinaries:
    def test_missing_binaries_are_reported_with_how_to_build_them(self, tmp_path: Path) -> None:
        with pytest.raises(binaries.MissingBinariesError, match="make setup") as err:
            binaries.locate({binaries.CACHE_ENV: str(tmp_path)})
        assert str(tmp_path / binaries.KUBE_VERSION) in str(err.value)

    def test_the_cache_root_defaults_under_xdg_cache_home(self) -> None:
        root = binaries.cache_root({"XDG_CACHE_HOME": "/c"})
        assert root == Path("/c/burstguard/kube")


class TestNodes:
    def test_a_node_is_managed_by_kwok_and_untainted_unless_asked(self) -> None:
        node = cluster.node_manifest("n1", cpu="4", memory="8Gi", pods=20)
        assert node["metadata"]["annotations"][cluster.KWOK_ANNOTATION] == "fake"
        assert node["spec"]["taints"] == []
        assert node["status"]["allocatable"]["memory"] == "8Gi"
        tainted = cluster.node_manifest("n2", taint=True)
        assert tainted["spec"]["taints"] == [cluster.KWOK_TAINT]
