"""Releases in flight: an entry lasts until the watch shows the pod ungated, or times out."""

from __future__ import annotations

from typing import Any, cast

from burstguard.operator import runtime
from tests.unit.test_pod_records import Pod


def make_runtime() -> runtime.Runtime:
    return runtime.Runtime(options=runtime.Options(), api=cast(Any, None))


def test_a_release_is_forgotten_once_the_watch_shows_the_pod_ungated() -> None:
    rt = make_runtime()
    rt.pod_store.replace([Pod("a").build(), Pod("b").build()])
    rt.pending_releases.update({"jobs/a": 100.0, "jobs/b": 100.0})
    rt.pod_store.apply("MODIFIED", Pod("a").ungated().build())
    rt.settle_releases(101.0, timeout_s=10.0)
    assert rt.pending_releases == {"jobs/b": 100.0}


def test_a_release_the_watch_never_confirms_is_forgotten_after_the_timeout() -> None:
    rt = make_runtime()
    rt.pod_store.replace([Pod("a").build()])
    rt.pending_releases["jobs/a"] = 100.0
    rt.settle_releases(109.0, timeout_s=10.0)
    assert "jobs/a" in rt.pending_releases
    rt.settle_releases(111.0, timeout_s=10.0)
    assert rt.pending_releases == {}


def test_a_release_of_a_pod_that_is_gone_is_forgotten() -> None:
    rt = make_runtime()
    rt.pending_releases["jobs/gone"] = 100.0
    rt.settle_releases(100.5, timeout_s=10.0)
    assert rt.pending_releases == {}


def test_a_release_still_waiting_for_a_slot_never_times_out() -> None:
    rt = make_runtime()
    rt.pod_store.replace([Pod("a").build()])
    rt.pending_releases["jobs/a"] = 100.0
    rt.releasing.add("jobs/a")
    rt.settle_releases(500.0, timeout_s=10.0)
    assert rt.pending_releases == {"jobs/a": 100.0}
