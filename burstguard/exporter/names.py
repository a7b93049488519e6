"""Every metric name the agent exports, in one place (kueue ``pkg/metrics/metrics.go``).

Rules: ``burstguard_`` prefix, base units (``_bytes``, ``_seconds``, ``_ratio``), ``_total``
on counters (the ``_total`` is added by prometheus_client for counter families, so the
constants here name the family). BPF metrics are named from their bpftrace map by
:func:`bpf_metric`: map ``@x_ns`` -> ``burstguard_bpf_x_seconds``; a counter map ``@y`` ->
family ``burstguard_bpf_y`` (exposed as ``burstguard_bpf_y_total``).
"""

from __future__ import annotations

from typing import Final

PREFIX: Final = "burstguard_"

ZONE_FREE_BYTES: Final = "burstguard_zone_free_bytes"
ZONE_MIN_BYTES: Final = "burstguard_zone_min_watermark_bytes"
ZONE_LOW_BYTES: Final = "burstguard_zone_low_watermark_bytes"
ZONE_HIGH_BYTES: Final = "burstguard_zone_high_watermark_bytes"
ZONE_HEADROOM_BYTES: Final = "burstguard_zone_headroom_bytes"
HEADROOM_BYTES: Final = "burstguard_node_headroom_bytes"
CACHE_CREDIT_BYTES: Final = "burstguard_node_cache_credit_bytes"
RECLAIMABLE_BYTES: Final = "burstguard_node_reclaimable_page_cache_bytes"
HIGH_ORDER_FREE_RATIO: Final = "burstguard_node_high_order_free_ratio"
RECLAIM_RATE: Final = "burstguard_node_reclaim_rate_per_second"
PSI_AVG: Final = "burstguard_node_memory_pressure_ratio"
PSI_STALL_SECONDS: Final = "burstguard_node_memory_pressure_stall_seconds"
NODE_STATE: Final = "burstguard_node_state"
SHRINKER_EXPOSED: Final = "burstguard_node_shrinker_exposed"
KERNEL_INFO: Final = "burstguard_node_kernel"
MOUNT_P99_SECONDS: Final = "burstguard_node_mount_p99_seconds"
LOCK_WAIT_P99_SECONDS: Final = "burstguard_node_lock_wait_p99_seconds"
SIGNAL_SOURCE_DEGRADED: Final = "burstguard_signal_source_degraded"
BPF_SCRIPT_UP: Final = "burstguard_bpf_script_up"
SAMPLES: Final = "burstguard_agent_samples"
SAMPLE_ERRORS: Final = "burstguard_agent_sample_errors"
SAMPLE_DURATION_SECONDS: Final = "burstguard_agent_last_sample_duration_seconds"
PUBLISHES: Final = "burstguard_agent_node_publishes"
PUBLISH_ERRORS: Final = "burstguard_agent_node_publish_errors"
PREPARATION_ACTIONS: Final = "burstguard_preparation_actions"
PREPARATION_FREED_BYTES: Final = "burstguard_preparation_freed_bytes"

BPF_PREFIX: Final = "burstguard_bpf_"
_UNIT_SUFFIX: Final = {"_ns": "_seconds"}


def bpf_metric(map_name: str, metric_type: str) -> str:
    """The metric family for a bpftrace map (see the module docstring)."""
    if metric_type == "histogram":
        for raw, base in _UNIT_SUFFIX.items():
            if map_name.endswith(raw):
                return BPF_PREFIX + map_name[: -len(raw)] + base
    return BPF_PREFIX + map_name


BPF_SECONDS_PER_UNIT: Final = {"nanoseconds": 1e-9}
"""Scale from a histogram map's unit to the exported base unit."""

# Operator (burstguard operator): pacing, webhook, intake steering, shadow mode.
OP_GATED_PODS: Final = "burstguard_gated_pods"
OP_RELEASES: Final = "burstguard_pod_releases"
OP_GATE_WAIT_SECONDS: Final = "burstguard_gate_wait_seconds"
OP_NODE_INTAKE: Final = "burstguard_node_intake_state"
OP_POLICY_NODES: Final = "burstguard_policy_nodes"
OP_SHADOW_DELAYED_PODS: Final = "burstguard_shadow_delayed_pods"
OP_SHADOW_DELAY_SECONDS: Final = "burstguard_shadow_delay_seconds"
OP_SHADOW_NODE_CLOSURES: Final = "burstguard_shadow_node_closures"
OP_WEBHOOK_REQUESTS: Final = "burstguard_webhook_requests"
OP_WEBHOOK_DURATION_SECONDS: Final = "burstguard_webhook_duration_seconds"
OP_API_WRITES: Final = "burstguard_operator_api_writes"
OP_TICK_DURATION_SECONDS: Final = "burstguard_pacer_tick_duration_seconds"
OP_PREPARE_REQUESTS: Final = "burstguard_prepare_requests"
OP_PREPARE_ANSWERS: Final = "burstguard_prepare_answers"
OP_PINNED_UNBOUND_PODS: Final = "burstguard_pinned_unbound_pods"
OP_LEADER: Final = "burstguard_operator_leader"
OP_DUPLICATE_RELEASES: Final = "burstguard_duplicate_release_patches"
OP_LEDGER_PODS: Final = "burstguard_ledger_pods"
