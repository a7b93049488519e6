"""The ledger of starts: transitions named after what happened, and each pod's memory counted
once, on one node, in one stage (property tests drive random event sequences)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from burstguard.core import ledger

MIB = 2**20
KEYS = st.sampled_from([f"jobs/p{i}" for i in range(6)])
NODES = st.sampled_from(["n1", "n2", "n3"])
MEMORY = st.one_of(st.none(), st.sampled_from([64 * MIB, 128 * MIB, 256 * MIB]))
DEFAULT = 100 * MIB

EVENTS = st.one_of(
    st.tuples(st.just("release"), KEYS, st.one_of(st.none(), NODES), MEMORY),
    st.tuples(st.just("patched"), KEYS),
    st.tuples(st.just("forget"), KEYS),
    st.tuples(st.just("confirm"), KEYS, st.one_of(st.none(), NODES), MEMORY),
    st.tuples(st.just("bind"), KEYS, NODES, MEMORY),
    st.tuples(st.just("start"), KEYS),
    st.tuples(st.just("finish"), KEYS),
    st.tuples(st.just("summarized"), NODES),
    st.tuples(st.just("expire")),
)


def apply(book: ledger.Ledger, event: tuple[object, ...], now: float) -> None:
    kind, *args = event
    if kind == "release":
        key, node, memory = args
        book.release(str(key), node=node, memory_bytes=memory, policy="batch", now=now)  # type: ignore[arg-type]
    elif kind == "patched":
        book.patched(str(args[0]), now)
    elif kind == "forget":
        book.forget(str(args[0]))
    elif kind == "confirm":
        key, node, memory = args
        book.confirm(str(key), node=node, memory_bytes=memory, policy="batch", now=now)  # type: ignore[arg-type]
    elif kind == "bind":
        key, node, memory = args
        book.bind(str(key), node=str(node), memory_bytes=memory, now=now)  # type: ignore[arg-type]
    elif kind == "start":
        book.start(str(args[0]), now=now)
    elif kind == "finish":
        book.finish(str(args[0]))
    elif kind == "summarized":
        book.summarized(str(args[0]), now - 1.5)
    else:
        book.expire(now, assumed_for_s=3.0, started_for_s=5.0)


def cost(entry: ledger.Entry) -> int:
    return DEFAULT if entry.memory_bytes is None else entry.memory_bytes


def check(book: ledger.Ledger) -> None:
    """Every entry in exactly one index; node sums are the entries' sums."""
    placed = {e.key for node in ("n1", "n2", "n3") for e in book.on_node(node)}
    unplaced = {e.key for e in book.unplaced("batch")} | {e.key for e in book.unplaced(None)}
    assert placed.isdisjoint(unplaced)
    assert placed | unplaced == set(book.entries)
    for node in ("n1", "n2", "n3"):
        mine = [e for e in book.entries.values() if e.node == node]
        assert {e.key for e in book.on_node(node)} == {e.key for e in mine}
        assert book.starting(node) == sum(1 for e in mine if e.stage != ledger.STARTED)
        everything = book.committed_bytes(node, sampled_at=None, default_bytes=DEFAULT)
        assert everything == sum(cost(e) for e in mine)
    for e in book.entries.values():
        assert e.stage in ledger.STAGES
        assert e.stage == ledger.RELEASED or e.node is not None
        assert e.confirmed or e.stage == ledger.RELEASED


@settings(max_examples=300, deadline=None)
@given(st.lists(EVENTS, max_size=40))
def test_any_sequence_of_events_counts_each_pod_once_on_one_node(
    events: list[tuple[object, ...]],
) -> None:
    book = ledger.Ledger()
    for i, event in enumerate(events):
        apply(book, event, now=float(i))
        check(book)
    total = sum(cost(e) for e in book.entries.values())
    counted = sum(
        book.committed_bytes(n, sampled_at=None, default_bytes=DEFAULT) for n in ("n1", "n2", "n3")
    ) + sum(cost(e) for e in book.unplaced("batch"))
    assert counted == total


@settings(max_examples=200, deadline=None)
@given(st.lists(EVENTS, max_size=30), KEYS)
def test_a_finished_pod_is_gone_from_every_count(
    events: list[tuple[object, ...]], key: str
) -> None:
    book = ledger.Ledger()
    for i, event in enumerate(events):
        apply(book, event, now=float(i))
    book.finish(key)
    assert key not in book.entries
    assert all(e.key != key for n in ("n1", "n2", "n3") for e in book.on_node(n))
    assert not book.assumed(key)


@settings(max_examples=200, deadline=None)
@given(st.lists(EVENTS, max_size=30), KEYS, NODES, MEMORY)
def test_a_bind_moves_the_pod_to_the_node_it_landed_on(
    events: list[tuple[object, ...]], key: str, node: str, memory: int | None
) -> None:
    book = ledger.Ledger()
    for i, event in enumerate(events):
        apply(book, event, now=float(i))
    book.bind(key, node=node, memory_bytes=memory, now=100.0)
    assert book.entries[key].stage == ledger.BOUND
    assert [n for n in ("n1", "n2", "n3") if any(e.key == key for e in book.on_node(n))] == [node]


@settings(max_examples=200, deadline=None)
@given(st.lists(EVENTS, max_size=30), KEYS, st.one_of(st.none(), NODES))
def test_forgetting_an_assumed_release_undoes_it(
    events: list[tuple[object, ...]], key: str, node: str | None
) -> None:
    book = ledger.Ledger()
    for i, event in enumerate(events):
        apply(book, event, now=float(i))
    book.finish(key)
    before = {
        n: book.committed_bytes(n, sampled_at=None, default_bytes=DEFAULT)
        for n in ("n1", "n2", "n3")
    }
    book.release(key, node=node, memory_bytes=None, policy="batch", now=50.0)
    assert book.assumed(key)
    book.forget(key)
    assert key not in book.entries
    after = {
        n: book.committed_bytes(n, sampled_at=None, default_bytes=DEFAULT)
        for n in ("n1", "n2", "n3")
    }
    assert before == after


def test_a_pod_moves_released_bound_started_and_a_later_summary_shows_it() -> None:
    book = ledger.Ledger()
    book.release("jobs/a", node="n1", memory_bytes=128 * MIB, policy="batch", now=10.0)
    assert book.assumed("jobs/a") and book.starting("n1") == 1
    book.confirm("jobs/a", node="n1", memory_bytes=128 * MIB, policy="batch", now=11.0)
    assert not book.assumed("jobs/a") and book.starting("n1") == 1
    book.bind("jobs/a", node="n1", memory_bytes=128 * MIB, now=12.0)
    book.start("jobs/a", now=13.0)
    assert book.starting("n1") == 0
    # A summary sampled before the start does not show its memory; one sampled after does.
    assert book.committed_bytes("n1", sampled_at=12.5, default_bytes=DEFAULT) == 128 * MIB
    assert book.committed_bytes("n1", sampled_at=13.5, default_bytes=DEFAULT) == 0
    book.summarized("n1", 13.5)
    assert "jobs/a" not in book.entries


def test_an_unconfirmed_release_is_forgotten_after_the_timeout_unless_its_patch_is_queued() -> None:
    book = ledger.Ledger()
    book.release("jobs/a", node=None, memory_bytes=None, policy="batch", now=100.0)
    book.release("jobs/b", node=None, memory_bytes=None, policy="batch", now=100.0)
    assert book.expire(109.0, assumed_for_s=10.0, started_for_s=120.0) == []
    assert book.expire(111.0, assumed_for_s=10.0, started_for_s=120.0, keep={"jobs/b"}) == [
        "jobs/a"
    ]
    assert book.assumed("jobs/b") and not book.assumed("jobs/a")


def test_a_patch_restarts_the_confirmation_timeout() -> None:
    book = ledger.Ledger()
    book.release("jobs/a", node=None, memory_bytes=None, policy="batch", now=100.0)
    book.patched("jobs/a", 108.0)
    assert book.expire(111.0, assumed_for_s=10.0, started_for_s=120.0) == []
    assert book.expire(119.0, assumed_for_s=10.0, started_for_s=120.0) == ["jobs/a"]


def test_a_release_decided_after_the_watch_saw_the_pod_bound_changes_nothing() -> None:
    book = ledger.Ledger()
    book.bind("jobs/a", node="n2", memory_bytes=None, now=5.0)
    book.release("jobs/a", node="n1", memory_bytes=None, policy="batch", now=6.0)
    assert book.entries["jobs/a"].stage == ledger.BOUND and book.starting("n1") == 0
