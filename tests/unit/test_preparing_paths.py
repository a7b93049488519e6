"""The agent writes the vm sysctls where the DaemonSet mounts them, and nowhere else.

With preparation on, the chart mounts only ``compact_memory`` and ``drop_caches`` (hostPath
type File) under ``--vm-sysctl-dir``; the executor must write there, not under the read-only
host /proc. Plain files stand in for the sysctls (the kernel write is the node layer's test).
"""

from __future__ import annotations

from pathlib import Path

from burstguard.agent import preparing
from burstguard.core import preparation


def test_compaction_and_drop_caches_are_written_under_the_vm_sysctl_dir(tmp_path: Path) -> None:
    vm = tmp_path / "vm-sysctl"
    vm.mkdir()
    for name in ("compact_memory", "drop_caches"):
        (vm / name).write_text("")
    proc = tmp_path / "proc"  # no sys/vm below it: a write there would fail
    executor = preparing.Executor(str(proc), lambda: 0, vm_sysctl_dir=str(vm))
    plan = preparation.Plan(
        want_bytes=0,
        source="test",
        actions=(
            preparation.Action(preparation.COMPACT),
            preparation.Action(preparation.DROP_CACHES, "1"),
        ),
    )
    ack = executor.execute(plan, "r1", shrinker_exposed=False, wall_now=0.0)
    assert [r.outcome for r in ack.actions] == ["done", "done"], ack
    assert (vm / "compact_memory").read_text() == "1"
    assert (vm / "drop_caches").read_text() == "1"


def test_without_the_option_the_sysctls_are_under_the_proc_root(tmp_path: Path) -> None:
    executor = preparing.Executor(str(tmp_path / "proc"), lambda: 0)
    plan = preparation.Plan(want_bytes=0, source="t", actions=(preparation.Action("compact"),))
    ack = executor.execute(plan, "r1", shrinker_exposed=False, wall_now=0.0)
    [result] = ack.actions
    assert result.outcome == "failed"
    assert str(tmp_path / "proc" / "sys/vm/compact_memory") in result.detail
