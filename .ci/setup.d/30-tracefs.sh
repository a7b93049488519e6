#!/usr/bin/env bash
# Mount tracefs (and debugfs) if the machine booted without them: bpftrace and the agent's
# tracepoint checks read /sys/kernel/tracing/events. Idempotent; a no-op when mounted or
# when not root (the node tests then report the missing capability).
set -euo pipefail
[ "$(id -u)" -eq 0 ] || { echo "tracefs: not root, skipping"; exit 0; }
if [ ! -d /sys/kernel/tracing/events ]; then
  echo "tracefs: mounting /sys/kernel/tracing"
  mount -t tracefs tracefs /sys/kernel/tracing || echo "tracefs: mount failed (kernel without CONFIG_TRACING?)"
fi
if [ -d /sys/kernel/debug ] && ! mountpoint -q /sys/kernel/debug; then
  mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null || true
fi
echo "tracefs: $( [ -d /sys/kernel/tracing/events ] && echo ready || echo unavailable )"
