"""The /proc parsers on every captured fixture, and on garbled or truncated input."""

from __future__ import annotations

import pathlib

import pytest

from burstguard.procfs import (
    buddyinfo,
    errors,
    meminfo,
    pressure,
    reading,
    scalars,
    snapshot,
    vmstat,
    zoneinfo,
)

FIXTURES = pathlib.Path(__file__).parent.parent / "fixtures" / "proc"
ROOTS = sorted(p for p in FIXTURES.iterdir() if p.is_dir())


def test_there_are_fixtures_from_real_machines() -> None:
    assert len(ROOTS) >= 3
    provenance = (FIXTURES / "PROVENANCE.md").read_text()
    for root in ROOTS:
        assert f"`{root.name}`" in provenance, f"{root.name} has no provenance line"


@pytest.mark.parametrize("root", ROOTS, ids=[r.name for r in ROOTS])
class TestEveryFixture:
    def test_zoneinfo_has_watermarks_for_every_populated_zone(self, root: pathlib.Path) -> None:
        zones = zoneinfo.parse((root / "zoneinfo").read_text())
        populated = [z for z in zones if z.managed_pages]
        assert populated
        for z in populated:
            assert z.min_pages is not None and z.low_pages is not None and z.high_pages is not None
            assert 0 <= z.min_pages <= z.low_pages <= z.high_pages
            assert z.protection is not None and len(z.protection) == len(zones)

    def test_vmstat_has_the_reclaim_counters(self, root: pathlib.Path) -> None:
        counters = vmstat.parse((root / "vmstat").read_text())
        assert "pgscan_kswapd" in counters and "pgscan_direct" in counters
        assert all(v >= 0 for v in counters.values())

    def test_meminfo_is_in_bytes(self, root: pathlib.Path) -> None:
        info = meminfo.parse((root / "meminfo").read_text())
        assert info["MemTotal"] % 1024 == 0
        assert 0 < info["MemFree"] <= info["MemTotal"]

    def test_buddyinfo_has_a_line_per_zone(self, root: pathlib.Path) -> None:
        buddy = buddyinfo.parse((root / "buddyinfo").read_text())
        assert buddy and all(len(z.free_blocks) == 11 for z in buddy)

    def test_a_whole_snapshot_reads(self, root: pathlib.Path) -> None:
        snap = snapshot.read(str(root), now=1.0, page_size=4096)
        assert snap.os_release[0].isdigit()
        assert snap.watermark_scale_factor is not None and snap.min_free_kbytes is not None
        if (root / "pressure" / "memory").exists():
            assert snap.pressure is not None


def test_zoneinfo_reads_the_idle_host_exactly() -> None:
    zones = zoneinfo.parse((FIXTURES / "host-6.18-idle" / "zoneinfo").read_text())
    normal = next(z for z in zones if z.name == "Normal")
    assert (normal.min_pages, normal.low_pages, normal.high_pages) == (5679, 7098, 8517)
    assert [z.name for z in zones] == ["DMA", "DMA32", "Normal", "Movable", "Device"]


def test_zoneinfo_leaves_absent_fields_as_none() -> None:
    zones = zoneinfo.parse("Node 0, zone   Normal\n  pages free     42\n        min      7\n")
    assert zones[0].free_pages == 42 and zones[0].min_pages == 7
    assert zones[0].high_pages is None and zones[0].managed_pages is None
    assert zones[0].protection is None


def test_pressure_without_full_line_is_allowed() -> None:
    psi = pressure.parse("some avg10=1.50 avg60=0.20 avg300=0.00 total=1234\n")
    assert psi.some.avg10 == 1.5 and psi.some.total_us == 1234 and psi.full is None


GARBLED = [
    pytest.param(zoneinfo.parse, "", "empty", id="zoneinfo-empty"),
    pytest.param(
        zoneinfo.parse,
        "Node 0, zone   Normal\n  pages free  abc\n",
        "not an integer",
        id="zoneinfo-non-integer",
    ),
    pytest.param(
        zoneinfo.parse,
        "Node 0, zone   Normal\n        min  5\n",
        "pages free",
        id="zoneinfo-truncated-zone",
    ),
    pytest.param(
        zoneinfo.parse,
        "Node 0, zone   Normal\n  pages free 1\n        min",
        "cut off",
        id="zoneinfo-cut-mid-line",
    ),
    pytest.param(
        zoneinfo.parse, "Node zero, zone x y\n", "malformed zone header", id="zoneinfo-bad-header"
    ),
    pytest.param(
        zoneinfo.parse, "  pages free 1\n", "before the first zone", id="zoneinfo-no-header"
    ),
    pytest.param(
        zoneinfo.parse,
        "Node 0, zone N\n pages free 1\n protection: 1, 2\n",
        "malformed protection",
        id="zoneinfo-bad-protection",
    ),
    pytest.param(
        vmstat.parse, "pgscan_kswapd 12 13\n", "expected 'name value'", id="vmstat-3-fields"
    ),
    pytest.param(vmstat.parse, "pgscan_kswapd -x\n", "not an integer", id="vmstat-non-integer"),
    pytest.param(
        meminfo.parse, "MemTotal 100 kB\n", "expected 'Name: value", id="meminfo-no-colon"
    ),
    pytest.param(meminfo.parse, "MemTotal: 100 MB\n", "unknown unit", id="meminfo-unit"),
    pytest.param(
        buddyinfo.parse, "Node 0, zone Normal\n", "malformed line", id="buddyinfo-no-counts"
    ),
    pytest.param(
        buddyinfo.parse, "Node 0, zone Normal 1 2 x\n", "not an integer", id="buddyinfo-non-integer"
    ),
    pytest.param(pressure.parse, "some avg10=1\n", "missing", id="psi-missing-fields"),
    pytest.param(
        pressure.parse,
        "most avg10=1 avg60=1 avg300=1 total=1\n",
        "unknown kind",
        id="psi-unknown-kind",
    ),
    pytest.param(
        pressure.parse, "full avg10=0 avg60=0 avg300=0 total=0\n", "no 'some'", id="psi-no-some"
    ),
    pytest.param(
        scalars.parse_release,
        "garbage here\n",
        "not a kernel release",
        id="osrelease-garbage",
    ),
    pytest.param(
        scalars.parse_int,
        "10 20\n",
        "expected one integer",
        id="sysctl-two-values",
    ),
]


@pytest.mark.parametrize(("parse", "text", "message"), GARBLED)
def test_garbled_text_is_a_parse_error_naming_the_file(parse, text, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(errors.ProcParseError) as info:
        parse(text, "/host/proc/somefile")
    assert info.value.path == "/host/proc/somefile"
    assert message in str(info.value)


def test_a_truncated_fixture_file_fails_with_its_path(tmp_path: pathlib.Path) -> None:
    text = (FIXTURES / "host-6.18-idle" / "zoneinfo").read_text()
    (tmp_path / "zoneinfo").write_text(text[: len(text) // 3])
    with pytest.raises(errors.ProcParseError) as info:
        zoneinfo.parse(reading.read_text(str(tmp_path), "zoneinfo"), str(tmp_path / "zoneinfo"))
    assert info.value.path.endswith("zoneinfo")


def test_binary_garbage_is_a_parse_error_not_a_decode_crash(tmp_path: pathlib.Path) -> None:
    (tmp_path / "vmstat").write_bytes(b"pgscan_kswapd \xff\xfe\n")
    with pytest.raises(errors.ProcParseError, match="not ASCII"):
        reading.read_text(str(tmp_path), "vmstat")


def test_a_missing_file_is_a_read_error_not_a_parse_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(errors.ProcReadError, match="no such file") as info:
        reading.read_text(str(tmp_path), "zoneinfo")
    assert info.value.path == str(tmp_path / "zoneinfo")


def test_reads_are_capped_whatever_the_file_claims(tmp_path: pathlib.Path) -> None:
    (tmp_path / "vmstat").write_text("x 1\n" * 1000)
    with pytest.raises(errors.ProcReadError, match="read cap"):
        reading.read_text(str(tmp_path), "vmstat", max_bytes=100)


def test_the_real_proc_of_this_machine_parses() -> None:
    snap = snapshot.read("/proc", now=0.0)
    assert snap.zones and snap.vmstat and snap.meminfo["MemTotal"] > 0
