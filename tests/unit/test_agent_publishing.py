"""When the agent publishes its summary, and the acknowledgement contract."""

from __future__ import annotations

import pytest

from burstguard.agent import publishing
from burstguard.api import nodesummary, preparationack


class TestRateLimit:
    def test_the_first_summary_is_published(self) -> None:
        assert publishing.due(None, "Open", now=0.0, interval_s=10.0)

    def test_a_state_change_is_published_at_once(self) -> None:
        assert publishing.due(
            publishing.Submitted("Open", 100.0), "Closed", now=100.1, interval_s=10.0
        )

    @pytest.mark.parametrize(
        ("now", "expected"),
        [
            pytest.param(105.0, False, id="inside-interval"),
            pytest.param(110.0, True, id="interval-passed"),
        ],
    )
    def test_an_unchanged_state_is_republished_only_after_the_interval(
        self, now: float, expected: bool
    ) -> None:
        assert publishing.due(publishing.Submitted("Open", 100.0), "Open", now, 10.0) is expected


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
