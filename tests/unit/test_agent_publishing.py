"""When the agent publishes its summary, and the acknowledgement contract."""

from __future__ import annotations

import pytest

from burstguard.agent import publishing
from burstguard.api import nodesummary, preparationack
from burstguard.core import publication

MI = 2**20


class TestRateLimit:
    last = publication.Published("Open", 1000 * MI, 100.0)

    def test_the_first_summary_is_published(self) -> None:
        assert publication.due(None, "Open", 0, now=0.0)

    def test_a_state_change_is_published_at_once(self) -> None:
        assert publication.due(self.last, "Closed", 1000 * MI, now=100.1)

    @pytest.mark.parametrize(
        ("headroom_mib", "now", "expected"),
        [
            pytest.param(1000, 105.0, False, id="unchanged-inside-interval"),
            pytest.param(1000, 110.0, True, id="heartbeat"),
            pytest.param(744, 105.0, True, id="fall-after-the-gap"),
            pytest.param(1256, 101.5, True, id="rise-after-the-gap"),
            pytest.param(1256, 100.5, False, id="rise-inside-the-gap"),
            pytest.param(1255, 105.0, False, id="rise-below-the-step"),
            pytest.param(745, 105.0, False, id="fall-below-the-step"),
        ],
    )
    def test_within_a_state_a_change_is_published_early_and_the_rest_on_the_heartbeat(
        self, headroom_mib: int, now: float, expected: bool
    ) -> None:
        got = publication.due(
            self.last, "Open", headroom_mib * MI, now, interval_s=10.0, step_bytes=256 * MI
        )
        assert got is expected

    def test_changed_reasons_are_published_after_the_gap(self) -> None:
        closed = publication.Published("Closed", 1000 * MI, 100.0, ("reclaim-active",))
        hold = ("reopen-hold",)
        assert publication.due(closed, "Closed", 1000 * MI, 101.0, reasons=hold)
        assert not publication.due(closed, "Closed", 1000 * MI, 100.5, reasons=hold)
        assert not publication.due(closed, "Closed", 1000 * MI, 105.0, reasons=closed.reasons)


class TestCondition:
    def test_open_is_true_and_closed_is_false_with_the_reasons_in_the_message(self) -> None:
        closed = nodesummary.NodeSummary(
            sampled_at=1.0,
            state="Closed",
            headroom_bytes=0,
            reclaimable_bytes=0,
            reasons=("headroom-low",),
        )
        cond = publishing.condition_for(closed, last_transition=1.0, now_wall=2.0)
        assert not cond.status and cond.reason == "HeadroomShort" and "headroom-low" in cond.message
        opened = publishing.condition_for(
            nodesummary.NodeSummary(
                sampled_at=1.0, state="Open", headroom_bytes=1, reclaimable_bytes=0
            ),
            1.0,
            2.0,
        )
        assert opened.status and opened.reason == "HeadroomAvailable"


class TestAck:
    def test_an_acknowledgement_survives_encoding(self) -> None:
        ack = preparationack.PrepareAck(
            id="r1",
            done_at=5.0,
            dry_run=False,
            bytes_wanted=10,
            freed_bytes=7,
            headroom_before_bytes=1,
            headroom_after_bytes=8,
            actions=(
                preparationack.ActionResult("drop_caches", "1", "done", 7, 0.1, "last resort"),
            ),
        )
        assert preparationack.decode(preparationack.encode(ack)) == ack

    @pytest.mark.parametrize("text", ["nope", '{"v": 2}', '{"v": 1, "id": "x"}'])
    def test_a_malformed_acknowledgement_is_refused(self, text: str) -> None:
        with pytest.raises(preparationack.AckError):
            preparationack.decode(text)
