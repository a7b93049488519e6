"""The preparing agent's mounts let it write compact_memory and no other sysctl (real kernel).

No container runtime runs on the build machine, so the rendered DaemonSet's own hostPath
volumes are mounted as a runtime mounts them (bind, then read-only where the volumeMount says
so) in a private mount namespace, and the writes are made as the preparing identity: uid 0
with every capability dropped and no_new_privs. Each refused sysctl is written with the value
it already has, so nothing changes even if a refusal regressed. The same check from inside
the agent's pod on the real node (kubelet, containerd) belongs to the realnode layer.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.chart import render

pytestmark = pytest.mark.node

MOUNT_AND_WRITE = r"""
set -eu
root="$1"; shift
while [ "$#" -gt 0 ]; do
  host="$1"; dest="$root$2"; ro="$3"; shift 3
  if [ -d "$host" ]; then mkdir -p "$dest"; else mkdir -p "$(dirname "$dest")"; : > "$dest"; fi
  mount --bind "$host" "$dest"
  if [ "$ro" = 1 ]; then mount -o remount,bind,ro "$dest"; fi
done
quiet() { setpriv --inh-caps=-all --ambient-caps=-all --bounding-set=-all --no-new-privs "$@"; }
for sysctl in min_free_kbytes panic_on_oom watermark_scale_factor; do
  path="$root/host/proc/sys/vm/$sysctl"
  value="$(cat "$path")"
  if quiet sh -c 'printf "%s\n" "$2" > "$1"' _ "$path" "$value" 2>/dev/null; then
    echo "written $sysctl"; else echo "refused $sysctl"; fi
done
if quiet sh -c 'echo 1 > "$1"' _ "$root/host/vm-sysctl/compact_memory"; then
  echo "written compact_memory"; else echo "refused compact_memory"; fi
"""


@pytest.fixture(autouse=True)
def root_and_tools() -> None:
    if os.geteuid() != 0:
        pytest.skip("mount namespaces and the sysctl writes need root")
    for tool in ("unshare", "setpriv"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} (util-linux) is not installed")


def test_the_preparing_agents_mounts_let_it_write_compact_memory_and_no_other_sysctl(
    tmp_path: Path,
) -> None:
    docs = render.objects({"agent": {"preparation": {"enabled": True}}})
    spec = render.pick(docs, "DaemonSet")["spec"]["template"]["spec"]
    mounts = {m["name"]: m for m in spec["containers"][0]["volumeMounts"]}
    argv: list[str] = []
    for volume in spec["volumes"]:
        if "hostPath" in volume:
            mount = mounts[volume["name"]]
            argv += [
                volume["hostPath"]["path"],
                mount["mountPath"],
                str(int(bool(mount.get("readOnly")))),
            ]
    done = subprocess.run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            MOUNT_AND_WRITE,
            "sh",
            str(tmp_path),
            *argv,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "written compact_memory" in lines, done.stdout + done.stderr
    for sysctl in ("min_free_kbytes", "panic_on_oom", "watermark_scale_factor"):
        assert f"refused {sysctl}" in lines, done.stdout + done.stderr
