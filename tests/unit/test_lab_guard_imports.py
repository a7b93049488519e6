"""The incident lab's guard runs under emulation, where every imported module costs ~17x its
native time: its import path must not pull in the Kubernetes client or pydantic."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("kubernetes", "pydantic", "urllib3", "yaml", "kopf", "click")


def test_the_guard_imports_no_kubernetes_client() -> None:
    code = (
        "import json, sys\n"
        "import burstguard.lab.guarding\n"
        f"print(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = json.loads(done.stdout)
    assert [m for m, present in loaded.items() if present] == []
