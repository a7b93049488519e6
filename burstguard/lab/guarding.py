"""The guard that runs inside the lab guest: burstguard's own node logic on a real 6.1 node.

This is not a model of burstguard; it is the code the agent and the operator run, wired to
one node without a cluster. The node side is the real agent (:class:`burstguard.agent.
sampling.Agent`, no API writer, no bpftrace): each tick it samples the guest's /proc, computes
headroom and reclaim rates, steps the node state machine and reads the kernel's exposure from
kallsyms. The operator side is the real pure code: :func:`burstguard.core.requesting.plan`
compares the imminent demand with the node's headroom and, when it is short, the request is
handed to the agent exactly as the Node annotation would be (``on_annotations``), which plans
(:mod:`burstguard.core.preparation`: compaction, targeted ``memory.reclaim``, clean page
cache last, never slab on an exposed kernel) and executes (:mod:`burstguard.agent.preparing`).
Container starts are released by :func:`burstguard.core.pacing.plan` through a FIFO: the
workload's runtime (``labload burst -g``) starts one container per byte it reads.

The guest runs Debian's python3.11 with the agent's dependencies copied from the host
(``building``). Decisions are logged as JSON lines for the report.

Modes: ``full`` (pacing + preparation), ``pace`` (pacing only), ``prepare`` (preparation only,
no gate: containers start as soon as the runtime has a slot).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

from burstguard.agent import sampling
from burstguard.api import names
from burstguard.api import policy as policy_api
from burstguard.api import preparation as request_api
from burstguard.core import nodestate, pacing, preparation, requesting

MIB = 1 << 20
NODE = "lab-node"


@dataclass(frozen=True)
class GuardConfig:
    """The lab node's policy, in the units of the BurstPolicy and agent flags it stands for."""

    pace: bool
    """Gate container starts through the pacer."""
    prepare: bool
    """Ask the node to make room when headroom is short of the imminent demand."""
    containers: int
    """Containers in the burst (the queue), count."""
    pod_cost_bytes: int
    """Memory one container start costs (podStartupMemory), bytes: the burst's largest
    container, as a pacer that sums the pods' requests would count it. With mixed sizes a
    mean undercounted whenever two large starts overlapped (the small ones finish first):
    kswapd woke once for a 153 ms hold."""
    max_starting_per_core: float = 1.0
    """Start concurrency per core (reference: 1 per core kept start time low), pods/core."""
    cores: int = 2
    """Guest vCPUs."""
    reserve_bytes: int = 32 * MIB
    """Agent reserve above the high watermark, bytes (512 MiB is for real nodes)."""
    sample_hz: float = 2.0
    """Agent samples per second of guest time. One tick of the real agent costs ~5 ms of CPU
    natively and ~250 ms under emulation, so 10 Hz took a whole vCPU from the burst; 2 Hz of
    guest time is still ~30 decisions per native-equivalent second (the agent default is 4)."""
    reopen_hold_s: float = 1.0
    """Healthy time before a closed node reopens, seconds."""
    prepare_cooldown_s: float = 1.0
    """Least time between two requests and between two actions of a kind, seconds (the
    lab's burst lasts about a minute; real nodes use the policy defaults of 30-300 s)."""
    max_gate_s: float = 600.0
    """Longest a start stays gated before it is released anyway (the policy's maxGateSeconds,
    its default), seconds: the operator's pacer never strands a pod, so neither does the
    lab's. Not scaled like the cooldowns: at 120 s the overdue rest of a slow guarded burst
    went out at once and kswapd held the lock for 11.2 s."""
    prepare_min_bytes: int = 16 * MIB
    """Smallest shortfall worth a request, bytes."""
    reclaim_cgroups: tuple[str, ...] = ()
    """cgroup v2 directories for targeted ``memory.reclaim`` (the page-cache writer)."""
    drop_page_cache: bool = True
    """Allow the last-resort ``drop_caches=1``."""


def pacing_policy(cfg: GuardConfig) -> policy_api.Pacing:
    """The BurstPolicy pacing section for the lab node."""
    return policy_api.Pacing(
        max_starting_per_node=max(1, int(cfg.max_starting_per_core * cfg.cores)),
        max_starting_per_core=cfg.max_starting_per_core,
        release_per_second=50.0,
        burst=100,
        max_gate_seconds=max(1, round(cfg.max_gate_s)),
        pod_startup_memory_bytes=cfg.pod_cost_bytes,
    )


def agent_config(cfg: GuardConfig) -> sampling.Config:
    """The agent's flags for the lab node: no API server, no bpftrace, preparation live."""
    return sampling.Config(
        node_name=NODE,
        proc_root="/proc",
        hz=cfg.sample_hz,
        reserve_bytes=cfg.reserve_bytes,
        close_below_bytes=cfg.pod_cost_bytes,
        reopen_hold_s=cfg.reopen_hold_s,
        stale_after_s=5.0,
        bpf=False,
        prepare=cfg.prepare,
        dry_run=False,
        preparation=preparation.Params(
            compaction=True,
            compaction_cooldown_s=10 * cfg.prepare_cooldown_s,
            cgroup_reclaim=bool(cfg.reclaim_cgroups),
            cgroups=cfg.reclaim_cgroups,
            cgroup_cooldown_s=cfg.prepare_cooldown_s,
            drop_page_cache=cfg.drop_page_cache,
            drop_cache_cooldown_s=cfg.prepare_cooldown_s,
            per_hour=100_000,
        ),
    )


class Fifos:
    """The gate (release one start per byte) and the started notifications."""

    def __init__(self, gate: str, started: str) -> None:
        self.started_fd = os.open(started, os.O_RDONLY | os.O_NONBLOCK)
        self.gate_path = gate
        self.gate_fd: int | None = None

    def open_gate(self) -> None:
        """Blocks until the container runtime opens its end."""
        self.gate_fd = os.open(self.gate_path, os.O_WRONLY)

    def release(self, n: int) -> int:
        if self.gate_fd is None or n <= 0:
            return 0
        try:
            return os.write(self.gate_fd, b"r" * n)
        except OSError as exc:
            if exc.errno in (errno.EPIPE, errno.EAGAIN):
                return 0
            raise

    def started(self) -> int:
        try:
            return len(os.read(self.started_fd, 4096))
        except BlockingIOError:
            return 0


def run(cfg: GuardConfig, fifos: Fifos | None, out: TextIO, ready: str, go: str) -> int:
    """The guard loop; returns when the whole burst is released and started, or on SIGTERM."""
    stop = False

    def on_term(_sig: int, _frm: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    pace_policy = pacing_policy(cfg)
    prep_policy = policy_api.Preparation(
        enabled=cfg.prepare, cooldown_s=cfg.prepare_cooldown_s, min_bytes=cfg.prepare_min_bytes
    )
    agent = sampling.Agent(agent_config(cfg))
    first = agent.tick()
    exposure = agent.exposure
    bucket = pacing.full_bucket(pace_policy.release_per_second, pace_policy.burst, 0.0)
    queue = [pacing.QueuedPod(key=f"lab/c{i:05d}", created_at=0.0) for i in range(cfg.containers)]
    released = started = requests = 0
    last_asked: dict[str, float] = {}
    period = 1.0 / cfg.sample_hz
    out.write(
        json.dumps(
            {
                "event": "config",
                "exposed": exposure.exposed if exposure else None,
                "exposure_reason": exposure.reason if exposure else "",
                "release": first.view.kernel_release,
                **_config_json(cfg),
            }
        )
        + "\n"
    )
    Path(ready).write_text("ready\n")
    # Imported and sampling: wait for the node's setup to finish before guarding the burst
    # (the guest starts the guard early because imports take minutes under emulation).
    while not stop and not Path(go).exists():
        time.sleep(0.2)
    agent.tick()  # fresh baseline for the reclaim rates
    if fifos is not None:
        fifos.open_gate()
    t0 = time.monotonic()
    while not stop:
        tick = time.monotonic()
        sample = agent.tick()
        room = sample.view.headroom
        head = room.headroom_bytes if room is not None else None
        if fifos is not None:
            started += fifos.started()
        starting = released - started
        closed = sample.machine.state is nodestate.State.CLOSED
        view = pacing.NodeView(
            name=NODE,
            state=pacing.NODE_CLOSED if closed else pacing.NODE_OPEN,
            starting=starting,
            headroom_bytes=head,
            cores=float(cfg.cores),
        )
        record: dict[str, Any] = {
            "t": round(tick - t0, 3),
            "mono": round(tick, 6),
            "state": sample.machine.state.value,
            "reasons": list(sample.machine.reasons),
            "headroom": head,
            "free": room.free_bytes if room is not None else None,
            "pgscan_kswapd_rate": sample.view.rates.pgscan_kswapd,
            "released": released,
            "starting": starting,
        }
        # Operator side: the node's share of the imminent demand (what the pacer may release
        # next, plus what is starting) against its headroom -> a preparation request.
        remaining = cfg.containers - released
        demand = (min(remaining, pace_policy.max_starting_per_node) + starting) * cfg.pod_cost_bytes
        if cfg.prepare and head is not None:
            for ask in requesting.plan(demand, [view], prep_policy, last_asked, tick):
                last_asked[ask.node] = tick
                requests += 1
                request = request_api.PrepareRequest(
                    id=f"lab-{requests}", bytes_wanted=ask.bytes_wanted, requested_at=time.time()
                )
                agent.on_annotations(
                    {names.PREPARE_REQUEST_ANNOTATION: request_api.encode(request)}
                )
                ack = agent.prepare_step()
                if ack is not None:
                    record["prepare"] = {
                        "want": ask.bytes_wanted,
                        "freed": ack.freed_bytes,
                        "done": [asdict(a) for a in ack.actions],
                    }
        if fifos is not None and queue:
            # as the operator's pacer: overdue starts first, regardless of budget
            late = len(pacing.overdue(queue, pace_policy.max_gate_seconds, tick - t0))
            plan = pacing.plan(queue[late:], [view], pace_policy, bucket=bucket, now=tick - t0)
            bucket = plan.bucket
            n = fifos.release(late + len(plan.release))
            released += n
            del queue[:n]
            record["release"] = n
            record["limited_by"] = plan.limited_by
            if late:
                record["overdue"] = late
        out.write(json.dumps(record) + "\n")
        if fifos is not None and not queue and started >= cfg.containers:
            break
        time.sleep(max(0.0, period - (time.monotonic() - tick)))
    out.flush()
    return 0


def _config_json(cfg: GuardConfig) -> dict[str, Any]:
    return {k: getattr(cfg, k) for k in cfg.__dataclass_fields__}


def main(argv: list[str] | None = None) -> int:
    """``python -m burstguard.lab.guarding`` inside the guest."""
    ap = argparse.ArgumentParser(prog="guarding")
    ap.add_argument("--mode", choices=("full", "pace", "prepare"), required=True)
    ap.add_argument("--gate", required=True)
    ap.add_argument("--started", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--ready", required=True)
    ap.add_argument("--go", required=True)
    ap.add_argument("--containers", type=int, required=True)
    ap.add_argument("--container-mb", type=int, required=True)
    ap.add_argument("--cost-mb", type=int, default=0)
    ap.add_argument("--per-core", type=float, default=1.0)
    ap.add_argument("--reserve-mb", type=int, default=32)
    ap.add_argument("--hz", type=float, default=2.0)
    ap.add_argument("--reclaim-cgroup", action="append", default=[])
    ap.add_argument("--no-drop-cache", action="store_true")
    a = ap.parse_args(argv)
    cfg = GuardConfig(
        pace=a.mode in ("full", "pace"),
        prepare=a.mode in ("full", "prepare"),
        containers=a.containers,
        pod_cost_bytes=(a.cost_mb or a.container_mb + 8) * MIB,
        max_starting_per_core=a.per_core,
        cores=os.cpu_count() or 1,
        reserve_bytes=a.reserve_mb * MIB,
        sample_hz=a.hz,
        reclaim_cgroups=tuple(a.reclaim_cgroup),
        drop_page_cache=not a.no_drop_cache,
    )
    fifos = Fifos(a.gate, a.started) if cfg.pace else None
    with open(a.out, "w", buffering=1) as out:
        try:
            return run(cfg, fifos, out, a.ready, a.go)
        except Exception as exc:  # the report needs the reason, not a silent guest
            out.write(json.dumps({"event": "error", "error": repr(exc)}) + "\n")
            with contextlib.suppress(OSError):
                Path(a.ready).write_text("failed\n")
            raise


if __name__ == "__main__":
    sys.exit(main())
