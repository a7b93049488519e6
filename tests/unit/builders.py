"""Small builders for test objects (kueue's testing wrappers pattern), instead of raw dicts."""

from __future__ import annotations

from dataclasses import dataclass, field

from burstguard.procfs import buddyinfo, snapshot, zoneinfo


@dataclass
class ZoneBuilder:
    """A zone in pages; ``build()`` returns the parsed form."""

    name: str = "Normal"
    free: int = 100_000
    min: int = 1_000
    low: int = 1_250
    high: int = 1_500
    managed: int = 1_000_000
    protection: tuple[int, ...] = (0, 0, 0, 0, 0)
    node: int = 0

    def text(self) -> str:
        """The zone as the kernel prints it in /proc/zoneinfo."""
        prot = ", ".join(str(p) for p in self.protection)
        return (
            f"Node {self.node}, zone {self.name:>8}\n"
            f"  pages free     {self.free}\n"
            f"        min      {self.min}\n"
            f"        low      {self.low}\n"
            f"        high     {self.high}\n"
            f"        spanned  {self.managed}\n"
            f"        present  {self.managed}\n"
            f"        managed  {self.managed}\n"
            f"        protection: ({prot})\n"
        )

    def build(self) -> zoneinfo.Zone:
        """Parse the text form, so builders exercise the parser too."""
        return zoneinfo.parse(self.text())[0]


@dataclass
class SnapshotBuilder:
    """A whole snapshot with sensible defaults."""

    zones: list[ZoneBuilder] = field(default_factory=lambda: [ZoneBuilder()])
    vmstat: dict[str, int] = field(default_factory=dict)
    meminfo: dict[str, int] = field(default_factory=dict)
    taken_at: float = 0.0

    def build(self) -> snapshot.Snapshot:
        return snapshot.Snapshot(
            taken_at=self.taken_at,
            zones=tuple(z.build() for z in self.zones),
            vmstat=dict(self.vmstat),
            meminfo=dict(self.meminfo),
            buddy=(buddyinfo.BuddyZone(0, "Normal", (10, 10, 10, 10, 10, 10)),),
            pressure=None,
            os_release="6.1.0-56-cloud-amd64",
            watermark_scale_factor=10,
            min_free_kbytes=67584,
            page_size=4096,
        )
