"""Releases under way: an assumed release lasts until the watch shows the pod ungated, or
its patch goes unconfirmed for the timeout; the ledger holds it, the runtime settles it."""

from __future__ import annotations

from typing import Any, cast

from burstguard.core import ledger
from burstguard.operator import runtime
from tests.unit.test_pod_records import Pod


def make_runtime() -> runtime.Runtime:
    return runtime.Runtime(options=runtime.Options(), api=cast(Any, None))


def assume(rt: runtime.Runtime, key: str, now: float = 100.0) -> None:
    rt.pod_store.ledger.release(key, node=None, memory_bytes=None, policy="batch", now=now)


def test_a_release_is_confirmed_once_the_watch_shows_the_pod_ungated() -> None:
    rt = make_runtime()
    rt.pod_store.replace([Pod("a").build(), Pod("b").build()])
    assume(rt, "jobs/a")
    assume(rt, "jobs/b")
    rt.pod_store.apply("MODIFIED", Pod("a").ungated().build())
    rt.settle_releases(101.0, timeout_s=10.0, started_for_s=120.0)
    book = rt.pod_store.ledger
    assert not book.assumed("jobs/a") and book.entries["jobs/a"].stage == ledger.RELEASED
    assert book.assumed("jobs/b")


def test_a_release_the_watch_never_confirms_is_forgotten_after_the_timeout() -> None:
    rt = make_runtime()
    rt.pod_store.replace([Pod("a").build()])
    assume(rt, "jobs/a")
    rt.settle_releases(109.0, timeout_s=10.0, started_for_s=120.0)
    assert rt.pod_store.ledger.assumed("jobs/a")
    rt.settle_releases(111.0, timeout_s=10.0, started_for_s=120.0)
    assert rt.pod_store.ledger.entries == {}


def test_a_release_of_a_pod_that_is_gone_is_forgotten() -> None:
    rt = make_runtime()
    rt.pod_store.replace([Pod("gone").build()])
    assume(rt, "jobs/gone")
    rt.pod_store.replace([])
    assert rt.pod_store.ledger.entries == {}


def test_a_release_still_waiting_for_a_slot_never_times_out() -> None:
    rt = make_runtime()
    rt.pod_store.replace([Pod("a").build()])
    assume(rt, "jobs/a")
    rt.releasing.add("jobs/a")
    rt.settle_releases(500.0, timeout_s=10.0, started_for_s=120.0)
    assert rt.pod_store.ledger.assumed("jobs/a")
