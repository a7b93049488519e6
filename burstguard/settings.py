"""Typed settings shared by every layer, with their defaults in one place.

Defaults are named constants so that code, docs and the Helm chart can point at one value.
Settings come from flags first, then ``BURSTGUARD_*`` environment variables.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final

DEFAULT_PROC_ROOT: Final = "/proc"
"""Where procfs is mounted; the DaemonSet mounts the host's /proc at /host/proc."""

DEFAULT_SAMPLE_HZ: Final = 4.0
"""Agent sampling rate (samples per second)."""

DEFAULT_PUBLISH_INTERVAL_S: Final = 10.0
"""Longest time between two Node summary publications when nothing changes (seconds)."""

MAX_PROC_FILE_BYTES: Final = 4 * 1024 * 1024
"""Size cap for one /proc read (bytes); /proc files report st_size 0, so it is never trusted."""


@dataclass(frozen=True)
class Settings:
    """Process-wide settings."""

    proc_root: str = DEFAULT_PROC_ROOT
    """Root of procfs (default /proc)."""
    sample_hz: float = DEFAULT_SAMPLE_HZ
    """Agent samples per second (default 4)."""
    publish_interval_s: float = DEFAULT_PUBLISH_INTERVAL_S
    """Longest gap between Node summary publications, seconds (default 10)."""
    node_name: str | None = None
    """This node's name (agent); from the downward API in the DaemonSet."""


def from_env(env: dict[str, str] | None = None) -> Settings:
    """Build settings from ``BURSTGUARD_*`` variables, falling back to the defaults."""
    e = dict(os.environ if env is None else env)
    return Settings(
        proc_root=e.get("BURSTGUARD_PROC_ROOT", DEFAULT_PROC_ROOT),
        sample_hz=float(e.get("BURSTGUARD_SAMPLE_HZ", DEFAULT_SAMPLE_HZ)),
        publish_interval_s=float(
            e.get("BURSTGUARD_PUBLISH_INTERVAL_S", DEFAULT_PUBLISH_INTERVAL_S)
        ),
        node_name=e.get("BURSTGUARD_NODE_NAME") or e.get("NODE_NAME"),
    )
