"""``burstguard doctor`` on fixture proc roots, garbled roots and this machine."""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

from burstguard.api import nodesummary
from burstguard.cli import doctor
from burstguard.core import diagnosis, headroom, kernel
from tests.unit.builders import SnapshotBuilder, ZoneBuilder

FIXTURES = pathlib.Path(__file__).parent.parent / "fixtures" / "proc"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(doctor.command, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def garbled_root(tmp_path: pathlib.Path, name: str, text: str) -> pathlib.Path:
    root = tmp_path / "proc"
    shutil.copytree(FIXTURES / "host-6.18-idle", root)
    (root / name).write_text(text)
    return root


def test_json_report_has_what_an_operator_needs() -> None:
    code, out, _ = run(
        "--proc-root", str(FIXTURES / "host-6.18-idle"), "--seconds", "0.1", "-o", "json"
    )
    report = json.loads(out)
    assert code in (0, 1)
    zone = next(z for z in report["zones"] if z["zone"] == "Normal")
    assert zone["free_bytes"] == 112121 * 4096 and zone["high_bytes"] == 8517 * 4096
    assert set(zone) >= {"free_bytes", "min_bytes", "low_bytes", "high_bytes", "headroom_bytes"}
    assert report["headroom_bytes"] > 0
    assert set(report["vmstat_rates"]) >= {"pgscan_kswapd", "pgscan_direct", "allocstall"}
    assert report["kernel"]["release"] == "6.18.44-fc-v782"
    assert report["kernel"]["shrinker_exposed"] is False


def test_the_pressure_fixture_is_a_warning_with_exit_code_1_counting_free_memory_only() -> None:
    code, out, _ = run(
        "--proc-root",
        str(FIXTURES / "host-6.18-pressure-b"),
        "--seconds",
        "0.1",
        "--cache-credit",
        "0",
    )
    assert code == 1
    assert "Verdict: WARNING" in out and "headroom-short" in out


def test_the_warm_6_18_fixture_has_headroom_from_clean_cache_and_says_so() -> None:
    """Free memory at the watermark beside 16 GiB of clean inactive cache (a warm node)."""
    _, out, _ = run(
        "--proc-root", str(FIXTURES / "host-6.18-pressure-b"), "--seconds", "0.1", "-o", "json"
    )
    report = json.loads(out)
    assert report["watermark_headroom_bytes"] < 64 * 2**20
    assert report["cache_credit_bytes"] == report["clean_inactive_file_bytes"] // 2
    assert (
        report["headroom_bytes"]
        == report["watermark_headroom_bytes"] + report["cache_credit_bytes"]
    )
    assert "headroom-from-cache" in [f["code"] for f in report["findings"]]


@pytest.mark.parametrize(
    ("name", "text", "words"),
    [
        pytest.param(
            "zoneinfo", "Node 0, zone Normal\n  pages free 12", "cannot parse", id="truncated"
        ),
        pytest.param("vmstat", "pgscan_kswapd lots\n", "not an integer", id="garbled"),
        pytest.param("meminfo", "", "empty", id="empty"),
    ],
)
def test_a_garbled_proc_file_exits_2_naming_the_file(
    tmp_path: pathlib.Path, name: str, text: str, words: str
) -> None:
    root = garbled_root(tmp_path, name, text)
    code, out, err = run("--proc-root", str(root), "--seconds", "0.1")
    assert code == 2 and out == ""
    assert str(root / name) in err and words in err
    assert "Traceback" not in err


def test_a_missing_proc_root_exits_2_with_advice(tmp_path: pathlib.Path) -> None:
    code, _, err = run("--proc-root", str(tmp_path / "nowhere"), "--seconds", "0.1")
    assert code == 2 and "cannot read" in err and "--proc-root" in err


def test_the_installed_command_never_prints_a_traceback(tmp_path: pathlib.Path) -> None:
    root = garbled_root(tmp_path, "buddyinfo", "\x00\x01garbage\n")
    exe = pathlib.Path(sys.executable).parent / "burstguard"
    proc = subprocess.run(
        [str(exe), "doctor", "--proc-root", str(root), "--seconds", "0.1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "buddyinfo" in proc.stderr and "Traceback" not in proc.stderr


def test_doctor_reads_this_machine() -> None:
    code, out, _ = run("--seconds", "0.2", "-o", "json")
    report = json.loads(out)
    assert code in (0, 1)
    assert report["zones"] and report["kernel"]["release"]
    assert report["bpf"]["tracepoints"]


class TestDiagnosis:
    def inputs(self, **kw: object) -> diagnosis.Inputs:
        snap = SnapshotBuilder(zones=[ZoneBuilder(free=2_000_000, high=1_000)]).build()
        base: dict[str, object] = {
            "headroom": headroom.assess(snap),
            "rates": nodesummary.ReclaimRates(),
            "exposure": kernel.Exposure(False, "6.18"),
            "psi_some_avg10": 0.0,
        }
        base.update(kw)
        return diagnosis.Inputs(**base)  # type: ignore[arg-type]

    def test_a_quiet_node_with_headroom_is_healthy(self) -> None:
        findings = diagnosis.diagnose(self.inputs())
        assert diagnosis.worst(findings) is diagnosis.Severity.OK

    def test_kswapd_scanning_is_a_warning(self) -> None:
        findings = diagnosis.diagnose(self.inputs(rates=nodesummary.ReclaimRates(pgscan_kswapd=10)))
        assert findings[0].code == "reclaim-active"

    def test_an_exposed_kernel_is_a_warning_with_the_reason(self) -> None:
        exposure = kernel.Exposure(True, "kernel 6.1.0 is older than 6.7")
        findings = diagnosis.diagnose(self.inputs(exposure=exposure))
        assert any(f.code == "shrinker-rwsem-exposed" and "6.1.0" in f.message for f in findings)


def test_the_pre_6_7_guest_is_reported_exposed_with_the_reason() -> None:
    root = FIXTURES / "guest-6.1.0-56-pressure-b"
    code, out, _ = run("--proc-root", str(root), "--seconds", "0.1", "-o", "json")
    report = json.loads(out)
    assert code == 1
    assert report["kernel"]["shrinker_exposed"] is True
    assert "older than 6.7" in report["kernel"]["reason"]
    assert any(f["code"] == "shrinker-rwsem-exposed" for f in report["findings"])
