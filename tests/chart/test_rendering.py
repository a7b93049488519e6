"""What the chart renders keeps the deploy contracts of DESIGN.md §2.1 and the issue.

Webhook: pods, CREATE only, fail open, short timeout, kube-system and the release namespace
excluded, no side effects. Operator: one replica, Recreate, non-root, read-only root fs.
Agent: least privilege per mode, on every node. RBAC: nothing beyond what each identity needs.
"""

from __future__ import annotations

import base64
import datetime
import json
import re
import subprocess
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from burstguard.exporter import names
from burstguard.k8s import webhookconfig
from tests.chart import generating, render

Json = dict[str, Any]
NAMESPACE = "burstguard-system"


def rendered(values: Json | None = None, **kwargs: Any) -> list[Json]:
    """Objects rendered with ``values`` in the test namespace."""
    render.require_tools()
    return render.objects(values, namespace=NAMESPACE, **kwargs)


def operator_container(docs: list[Json]) -> Json:
    container: Json = render.pick(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    return container


def agent_container(docs: list[Json]) -> Json:
    daemonset = render.pick(docs, "DaemonSet")
    container: Json = daemonset["spec"]["template"]["spec"]["containers"][0]
    return container


def agent_volumes(docs: list[Json]) -> dict[str, Json]:
    """Agent volume name -> {hostPath, mountPath, readOnly}."""
    spec = render.pick(docs, "DaemonSet")["spec"]["template"]["spec"]
    mounts = {m["name"]: m for m in spec["containers"][0]["volumeMounts"]}
    return {
        v["name"]: {
            "hostPath": v.get("hostPath", {}).get("path"),
            "mountPath": mounts[v["name"]]["mountPath"],
            "readOnly": mounts[v["name"]].get("readOnly", False),
        }
        for v in spec["volumes"]
    }


def webhook_secret(docs: list[Json]) -> str:
    """Name of the Secret the operator serves the webhook with, checking the file mapping."""
    volumes = render.pick(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]
    [volume] = [v for v in volumes if v["name"] == "webhook-tls"]
    # burstguard operator --cert-dir reads ca.pem, tls.crt and tls.key.
    paths = {item["key"]: item["path"] for item in volume["secret"]["items"]}
    assert paths == {"tls.crt": "tls.crt", "tls.key": "tls.key", "ca.crt": "ca.pem"}
    name: str = volume["secret"]["secretName"]
    return name


def self_signed_ca_pem() -> bytes:
    """A fresh self-signed CA certificate, PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-ca")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


class TestWebhook:
    def test_registers_pod_create_only_failing_open_with_a_short_timeout(self) -> None:
        webhook = render.pick(rendered(), "MutatingWebhookConfiguration")["webhooks"][0]
        assert webhook["rules"] == [
            {
                "operations": ["CREATE"],
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "resources": ["pods"],
                "scope": "Namespaced",
            }
        ]
        assert webhook["failurePolicy"] == "Ignore"
        assert webhook["timeoutSeconds"] <= 5
        assert webhook["sideEffects"] == "None"

    def test_the_operators_own_registration_for_development_keeps_the_charts_contract(
        self,
    ) -> None:
        url, ca_pem = "https://127.0.0.1:9443/mutate-pods", self_signed_ca_pem()
        render.require_tools()
        chart = render.webhook_configuration(url=url, ca_pem=ca_pem, namespace=NAMESPACE)
        dev = webhookconfig.manifest(
            url=url, ca_pem=ca_pem, excluded_namespaces=["kube-system", NAMESPACE]
        )
        assert dev["metadata"]["name"] == chart["metadata"]["name"]
        assert [h["name"] for h in chart["webhooks"]] == [h["name"] for h in dev["webhooks"]]
        for chart_hook, dev_hook in zip(chart["webhooks"], dev["webhooks"], strict=True):
            for hook in (chart_hook, dev_hook):
                for expression in hook["namespaceSelector"]["matchExpressions"]:
                    expression["values"] = sorted(expression["values"])
            # Every setting the development registration makes is the chart's.
            assert {k: v for k, v in chart_hook.items() if k in dev_hook} == dev_hook

    def test_excludes_kube_system_and_the_release_namespace(self) -> None:
        webhook = render.pick(rendered(), "MutatingWebhookConfiguration")["webhooks"][0]
        [expression] = webhook["namespaceSelector"]["matchExpressions"]
        assert expression["key"] == "kubernetes.io/metadata.name"
        assert expression["operator"] == "NotIn"
        assert set(expression["values"]) == {"kube-system", NAMESPACE}

    def test_leaves_pods_bound_to_a_node_and_daemonset_pods_to_the_apiserver(self) -> None:
        webhook = render.pick(rendered(), "MutatingWebhookConfiguration")["webhooks"][0]
        expressions = " ".join(c["expression"] for c in webhook["matchConditions"])
        assert "nodeName" in expressions
        assert "DaemonSet" in expressions

    def test_generated_certificate_is_signed_by_the_ca_bundle_for_the_service_name(self) -> None:
        docs = rendered()
        secret = render.pick(docs, "Secret")
        webhook = render.pick(docs, "MutatingWebhookConfiguration")["webhooks"][0]
        ca_pem = base64.b64decode(webhook["clientConfig"]["caBundle"])
        assert base64.b64decode(secret["data"]["ca.crt"]) == ca_pem
        ca = x509.load_pem_x509_certificate(ca_pem)
        cert = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
        cert.verify_directly_issued_by(ca)
        service = webhook["clientConfig"]["service"]
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert f"{service['name']}.{service['namespace']}.svc" in sans.get_values_for_type(
            x509.DNSName
        )
        assert cert.not_valid_after_utc > datetime.datetime.now(datetime.UTC) + datetime.timedelta(
            days=365
        )
        assert webhook_secret(docs) == secret["metadata"]["name"]

    def test_url_mode_points_at_the_url_trusts_the_given_ca_and_generates_nothing(self) -> None:
        ca_pem = self_signed_ca_pem()
        render.require_tools()
        config = render.webhook_configuration(
            url="https://127.0.0.1:18443/mutate-pods", ca_pem=ca_pem, release="bg-url"
        )
        client = config["webhooks"][0]["clientConfig"]
        assert client == {
            "url": "https://127.0.0.1:18443/mutate-pods",
            "caBundle": base64.b64encode(ca_pem).decode(),
        }
        assert config["metadata"]["name"] == "bg-url-burstguard"
        docs = rendered({"webhook": {"url": client["url"], "caBundle": client["caBundle"]}})
        assert [d for d in docs if d["kind"] in {"Secret", "Certificate"}] == []

    def test_an_existing_secret_is_mounted_and_its_ca_trusted_instead_of_generated_ones(
        self,
    ) -> None:
        bundle = base64.b64encode(self_signed_ca_pem()).decode()
        docs = rendered({"webhook": {"existingSecret": "my-tls", "caBundle": bundle}})
        assert webhook_secret(docs) == "my-tls"
        config = render.pick(docs, "MutatingWebhookConfiguration")
        assert config["webhooks"][0]["clientConfig"]["caBundle"] == bundle
        assert "service" in config["webhooks"][0]["clientConfig"]
        assert [d for d in docs if d["kind"] in {"Secret", "Certificate"}] == []

    def test_url_mode_without_a_ca_bundle_is_refused(self) -> None:
        render.require_tools()
        with pytest.raises(generating.HelmError, match=r"webhook\.caBundle is required"):
            rendered({"webhook": {"url": "https://127.0.0.1:1/x"}})

    def test_cert_manager_mode_injects_the_ca_of_the_certificate_the_operator_mounts(
        self,
    ) -> None:
        docs = rendered({"webhook": {"certManager": {"enabled": True}}})
        config = render.pick(docs, "MutatingWebhookConfiguration")
        certificate = render.pick(docs, "Certificate")
        assert config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == (
            f"{NAMESPACE}/{certificate['metadata']['name']}"
        )
        assert "caBundle" not in config["webhooks"][0]["clientConfig"]
        assert [d for d in docs if d["kind"] == "Secret"] == []
        assert webhook_secret(docs) == certificate["spec"]["secretName"]


class TestOperator:
    def test_runs_non_root_on_a_read_only_root_filesystem_without_capabilities(self) -> None:
        spec = render.pick(rendered(), "Deployment")["spec"]["template"]["spec"]
        container = spec["containers"][0]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}

    def test_has_separate_liveness_and_readiness_probes_and_resources(self) -> None:
        container = operator_container(rendered())
        paths = {p: container[p]["httpGet"]["path"] for p in ("startupProbe", "livenessProbe")}
        assert paths == {"startupProbe": "/livez", "livenessProbe": "/livez"}
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["resources"]["limits"]["memory"]

    def test_skips_the_same_namespaces_as_the_webhook_configuration(self) -> None:
        docs = rendered({"webhook": {"excludeNamespaces": ["kube-system", "batch-infra"]}})
        webhook = render.pick(docs, "MutatingWebhookConfiguration")["webhooks"][0]
        [expression] = webhook["namespaceSelector"]["matchExpressions"]
        flags = [
            a.removeprefix("--exclude-namespace=")
            for a in operator_container(docs)["args"]
            if a.startswith("--exclude-namespace=")
        ]
        assert sorted(flags) == sorted(expression["values"])
        assert set(flags) == {"kube-system", "batch-infra", NAMESPACE}

    def test_two_replicas_elect_a_leader_by_lease_and_roll_without_a_gap(self) -> None:
        docs = rendered()
        deployment = render.pick(docs, "Deployment", "burstguard-operator")
        spec = deployment["spec"]
        assert spec["replicas"] == 2
        assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
        args = operator_container(docs)["args"]
        assert "--leader-elect" in args and "--lease-name=burstguard-operator" in args
        pdb = render.pick(docs, "PodDisruptionBudget", "burstguard-operator")
        assert pdb["spec"]["maxUnavailable"] == 1
        role = render.pick(docs, "Role", "burstguard-operator-leader")
        assert {r["resources"][0] for r in role["rules"]} == {"leases"}
        affinity = spec["template"]["spec"]["affinity"]["podAntiAffinity"]
        assert affinity["preferredDuringSchedulingIgnoredDuringExecution"]

    def test_service_exposes_the_webhook_and_metrics_ports(self) -> None:
        service = render.pick(rendered(), "Service", "burstguard-operator")
        assert {p["name"] for p in service["spec"]["ports"]} == {"webhook", "metrics"}


class TestAgent:
    def test_without_preparation_observes_as_non_root_without_capabilities_and_proc_read_only(
        self,
    ) -> None:
        docs = rendered({"agent": {"preparation": {"enabled": False}}})
        context = agent_container(docs)["securityContext"]
        assert context["runAsNonRoot"] is True
        assert context["privileged"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
        volumes = agent_volumes(docs)
        assert volumes["host-proc"] == {
            "hostPath": "/proc",
            "mountPath": "/host/proc",
            "readOnly": True,
        }
        writable = [v for v in volumes.values() if v["hostPath"] and not v["readOnly"]]
        assert writable == []

    def test_preparation_mounts_writable_only_the_files_it_writes_as_root_without_capabilities(
        self,
    ) -> None:
        docs = rendered({"agent": {"preparation": {"enabled": True, "dropPageCache": False}}})
        context = agent_container(docs)["securityContext"]
        assert context["runAsUser"] == 0
        assert context["capabilities"] == {"drop": ["ALL"]}
        writable = {
            v["hostPath"]: v["mountPath"]
            for v in agent_volumes(docs).values()
            if v["hostPath"] and not v["readOnly"]
        }
        assert writable == {"/proc/sys/vm/compact_memory": "/host/vm-sysctl/compact_memory"}
        args = agent_container(docs)["args"]
        assert "--prepare" in args
        assert "--vm-sysctl-dir=/host/vm-sysctl" in args

    def test_by_default_the_agent_prepares_with_compaction_and_clean_page_cache_drops(
        self,
    ) -> None:
        docs = rendered()
        writable = {
            v["hostPath"]
            for v in agent_volumes(docs).values()
            if v["hostPath"] and not v["readOnly"]
        }
        assert writable == {"/proc/sys/vm/compact_memory", "/proc/sys/vm/drop_caches"}
        args = agent_container(docs)["args"]
        assert "--prepare" in args and "--drop-page-cache" in args

    def test_preparation_adds_drop_caches_and_each_cgroups_memory_reclaim_as_files(
        self,
    ) -> None:
        cgroups = ["kubepods.slice/kubepods-besteffort.slice", "/batch.slice/"]
        docs = rendered(
            {"agent": {"preparation": {"enabled": True, "dropPageCache": True, "cgroups": cgroups}}}
        )
        writable = {
            v["hostPath"]: v["mountPath"]
            for v in agent_volumes(docs).values()
            if v["hostPath"] and not v["readOnly"]
        }
        assert writable == {
            "/proc/sys/vm/compact_memory": "/host/vm-sysctl/compact_memory",
            "/proc/sys/vm/drop_caches": "/host/vm-sysctl/drop_caches",
            "/sys/fs/cgroup/kubepods.slice/kubepods-besteffort.slice/memory.reclaim": (
                "/host/sys/fs/cgroup/kubepods.slice/kubepods-besteffort.slice/memory.reclaim"
            ),
            "/sys/fs/cgroup/batch.slice/memory.reclaim": (
                "/host/sys/fs/cgroup/batch.slice/memory.reclaim"
            ),
        }
        spec = render.pick(docs, "DaemonSet")["spec"]["template"]["spec"]
        types = {
            v["hostPath"]["path"]: v["hostPath"]["type"] for v in spec["volumes"] if "hostPath" in v
        }
        assert {t for p, t in types.items() if p != "/proc"} == {"File"}
        args = agent_container(docs)["args"]
        assert "--cgroup=/host/sys/fs/cgroup/batch.slice" in args
        assert "--drop-page-cache" in args

    def test_bpf_adds_only_cap_bpf_and_cap_perfmon_and_read_only_tracefs(self) -> None:
        docs = rendered({"agent": {"bpf": {"enabled": True}}})
        context = agent_container(docs)["securityContext"]
        assert context["capabilities"] == {"drop": ["ALL"], "add": ["BPF", "PERFMON"]}
        assert context["privileged"] is False
        assert agent_volumes(docs)["tracefs"]["readOnly"] is True

    def test_runs_on_every_node_with_a_priority_class(self) -> None:
        spec = render.pick(rendered(), "DaemonSet")["spec"]["template"]["spec"]
        assert {"operator": "Exists"} in spec["tolerations"]
        assert spec["priorityClassName"] == "system-node-critical"

    def test_is_told_its_node_name_and_the_host_proc_root(self) -> None:
        container = agent_container(rendered())
        assert "--node-name=$(NODE_NAME)" in container["args"]
        assert "--proc-root=/host/proc" in container["args"]
        env = {e["name"]: e for e in container["env"]}
        assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"

    def test_node_writes_are_bound_to_the_agents_own_node(self) -> None:
        docs = rendered()
        policy = render.pick(docs, "ValidatingAdmissionPolicy", "burstguard-agent-own-node")
        binding = render.pick(docs, "ValidatingAdmissionPolicyBinding", "burstguard-agent-own-node")
        assert binding["spec"] == {
            "policyName": policy["metadata"]["name"],
            "validationActions": ["Deny"],
        }
        [condition] = policy["spec"]["matchConditions"]
        account = render.pick(docs, "DaemonSet")["spec"]["template"]["spec"]["serviceAccountName"]
        assert f"system:serviceaccount:{NAMESPACE}:{account}" in condition["expression"]
        assert policy["spec"]["failurePolicy"] == "Fail"


RULE_KEYS = ("apiGroups", "resources", "verbs")


def rules_of(docs: list[Json], role_name_suffix: str) -> list[Json]:
    role = next(
        d
        for d in docs
        if d["kind"] == "ClusterRole" and d["metadata"]["name"].endswith(role_name_suffix)
    )
    rules: list[Json] = role["rules"]
    return rules


class TestRbac:
    @pytest.mark.parametrize("identity", ["-operator", "-agent"])
    def test_no_wildcards_no_secrets_no_pod_or_node_creation(self, identity: str) -> None:
        for rule in rules_of(rendered(), identity):
            for key in RULE_KEYS:
                assert "*" not in rule[key], rule
            assert "secrets" not in rule["resources"]
            if {"pods", "nodes"} & set(rule["resources"]):
                assert not {"create", "delete", "deletecollection", "update"} & set(
                    rule["verbs"]
                ), rule

    def test_agent_may_not_touch_pods_or_policies(self) -> None:
        resources = {r for rule in rules_of(rendered(), "-agent") for r in rule["resources"]}
        assert resources == {"nodes", "nodes/status"}

    def test_the_agents_events_are_granted_in_the_default_namespace_only(self) -> None:
        docs = rendered()
        role = render.pick(docs, "Role", "burstguard-agent-events")
        binding = render.pick(docs, "RoleBinding", "burstguard-agent-events")
        assert role["metadata"]["namespace"] == "default"
        assert role["rules"] == [{"apiGroups": [""], "resources": ["events"], "verbs": ["create"]}]
        assert binding["metadata"]["namespace"] == "default"
        account = render.pick(docs, "DaemonSet")["spec"]["template"]["spec"]["serviceAccountName"]
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}
        ]

    @pytest.mark.parametrize("component", ["operator", "agent"])
    def test_an_existing_service_account_must_be_named(self, component: str) -> None:
        values = {component: {"serviceAccount": {"create": False}}}
        with pytest.raises(generating.HelmError, match=f"{component}.serviceAccount.name"):
            rendered(values)
        named = {component: {"serviceAccount": {"create": False, "name": "mine"}}}
        docs = rendered(named)
        bound = {
            s["name"]
            for d in docs
            if d["kind"] == "ClusterRoleBinding" and d["metadata"]["name"].endswith(f"-{component}")
            for s in d["subjects"]
        }
        assert bound == {"mine"}

    def test_each_identity_is_bound_to_its_own_service_account(self) -> None:
        docs = rendered()
        bindings = {
            d["metadata"]["name"]: d["subjects"] for d in docs if d["kind"] == "ClusterRoleBinding"
        }
        accounts = {d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount"}
        assert len(accounts) == 2
        for subjects in bindings.values():
            [subject] = subjects
            assert subject["name"] in accounts
            assert subject["namespace"] == NAMESPACE


class TestOperatorApiPolicies:
    def test_pod_and_node_writes_of_the_operator_are_narrowed_by_bound_policies(self) -> None:
        docs = rendered()
        account = render.pick(docs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"]
        for name, resources in (
            ("burstguard-operator-pods", ["pods"]),
            ("burstguard-operator-nodes", ["nodes", "nodes/status"]),
        ):
            policy = render.pick(docs, "ValidatingAdmissionPolicy", name)
            binding = render.pick(docs, "ValidatingAdmissionPolicyBinding", name)
            assert binding["spec"] == {"policyName": name, "validationActions": ["Deny"]}
            assert policy["spec"]["failurePolicy"] == "Fail"
            [rule] = policy["spec"]["matchConstraints"]["resourceRules"]
            assert rule["resources"] == resources
            assert rule["operations"] == ["UPDATE"]
            [condition] = policy["spec"]["matchConditions"]
            assert f"'system:serviceaccount:{NAMESPACE}:{account}'" in condition["expression"]

    def test_the_policies_can_be_turned_off(self) -> None:
        docs = rendered({"operator": {"apiRestriction": False}})
        names_ = {d["metadata"]["name"] for d in docs if d["kind"] == "ValidatingAdmissionPolicy"}
        assert names_ == {"burstguard-agent-own-node"}


class TestNetworkPolicy:
    def test_on_by_default_only_the_webhook_and_metrics_ports_are_open(self) -> None:
        docs = rendered()
        operator = render.pick(docs, "NetworkPolicy", "burstguard-operator")
        agent = render.pick(docs, "NetworkPolicy", "burstguard-agent")
        assert operator["spec"]["policyTypes"] == ["Ingress"]
        webhook, metrics = operator["spec"]["ingress"]
        assert webhook == {"ports": [{"port": "webhook", "protocol": "TCP"}]}
        scraper = [
            {
                "namespaceSelector": {},
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
            }
        ]
        assert metrics == {"ports": [{"port": "metrics", "protocol": "TCP"}], "from": scraper}
        assert agent["spec"]["ingress"] == [
            {"ports": [{"port": "metrics", "protocol": "TCP"}], "from": scraper}
        ]
        selected = {
            d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"]
            for d in docs
            if d["kind"] in ("Deployment", "DaemonSet")
        }
        for policy, workload in ((operator, "burstguard-operator"), (agent, "burstguard-agent")):
            labels = selected[workload]
            assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()

    def test_the_webhook_port_can_be_narrowed_to_the_control_plane(self) -> None:
        block = [{"ipBlock": {"cidr": "10.0.0.0/24"}}]
        docs = rendered({"networkPolicy": {"webhookFrom": block}})
        operator = render.pick(docs, "NetworkPolicy", "burstguard-operator")
        assert operator["spec"]["ingress"][0]["from"] == block

    def test_an_empty_scraper_list_is_refused(self) -> None:
        with pytest.raises(generating.HelmError, match="metricsFrom"):
            rendered({"networkPolicy": {"metricsFrom": []}})
        docs = rendered({"networkPolicy": {"enabled": False}})
        assert not [d for d in docs if d["kind"] == "NetworkPolicy"]


class TestReleaseHook:
    def test_uninstall_runs_release_all_before_anything_is_deleted(self) -> None:
        job = render.pick(rendered(), "Job")
        assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-delete"
        container = job["spec"]["template"]["spec"]["containers"][0]
        assert container["command"] + container["args"] == ["burstguard", "release", "--all"]

    def test_generated_manifests_have_no_hook(self) -> None:
        text = (generating.MANIFESTS / "burstguard.yaml").read_text()
        assert "helm.sh/hook" not in text


METRIC = re.compile(r"\bburstguard_[a-z_]+")
SUFFIXES = ("_total", "_bucket", "_sum", "_count", "_created", "_info")


def family(metric: str) -> str:
    """The family a sample name belongs to (``x_total`` -> ``x``)."""
    for suffix in SUFFIXES:
        if metric.endswith(suffix):
            return metric.removesuffix(suffix)
    return metric


def promql_errors(expressions: dict[str, str]) -> str:
    """What Prometheus' parser says about each expression that does not parse (empty: none)."""
    checker = render.require_tools().promql_check
    stdin = "".join(json.dumps({"name": k, "expr": v}) + "\n" for k, v in expressions.items())
    done = subprocess.run(
        [str(checker)], input=stdin, capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode in {0, 1}, done.stderr
    return done.stdout


class TestMonitoring:
    def test_alerts_and_dashboard_use_only_metrics_burstguard_exports(self) -> None:
        docs = rendered(
            {
                "metrics": {
                    "prometheusRule": {"enabled": True},
                    "grafanaDashboard": {"enabled": True},
                }
            }
        )
        exported = {
            value for key, value in vars(names).items() if key.isupper() and isinstance(value, str)
        }
        text = str(render.pick(docs, "PrometheusRule")) + str(render.pick(docs, "ConfigMap"))
        used = {family(m) for m in METRIC.findall(text)}
        assert used, "no burstguard metric referenced"
        assert used - exported == set()

    def test_alerts_cover_closed_nodes_gated_pods_and_reclaim_during_bursts(self) -> None:
        docs = rendered({"metrics": {"prometheusRule": {"enabled": True}}})
        alerts = {
            r["alert"]
            for group in render.pick(docs, "PrometheusRule")["spec"]["groups"]
            for r in group["rules"]
        }
        assert {
            "BurstguardNodeClosedTooLong",
            "BurstguardPodsGatedTooLong",
            "BurstguardReclaimDuringBurst",
        } <= alerts

    def test_alert_and_dashboard_expressions_are_valid_promql(self) -> None:
        docs = rendered(
            {
                "metrics": {
                    "prometheusRule": {"enabled": True},
                    "grafanaDashboard": {"enabled": True},
                }
            }
        )
        expressions = {
            rule["alert"]: rule["expr"]
            for group in render.pick(docs, "PrometheusRule")["spec"]["groups"]
            for rule in group["rules"]
        }
        dashboard = json.loads(render.pick(docs, "ConfigMap")["data"]["burstguard.json"])
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                # Grafana substitutes $__rate_interval before Prometheus sees the query.
                expr = target["expr"].replace("$__rate_interval", "5m")
                expressions[f"{panel['title']} {target['refId']}"] = expr
        assert promql_errors(expressions) == ""

    def test_the_promql_check_reports_an_expression_that_does_not_parse(self) -> None:
        report = promql_errors({"fine": "up == 1", "broken": "sum(rate(x[5m])"})
        assert report.startswith("broken:")
        assert "fine" not in report

    def test_optional_monitoring_objects_are_off_by_default(self) -> None:
        kinds = {d["kind"] for d in rendered()}
        assert not {"ServiceMonitor", "PrometheusRule", "ConfigMap"} & kinds
