"""Kubernetes' second-precision timestamps, written by one function."""

from __future__ import annotations

import datetime

from burstguard.api import times


def test_a_timestamp_is_utc_with_seconds_and_a_z() -> None:
    assert times.rfc3339(0) == "1970-01-01T00:00:00Z"
    assert times.rfc3339(1_796_526_480.75) == "2026-12-06T03:08:00Z"


def test_the_text_reads_back_as_the_same_whole_second() -> None:
    text = times.rfc3339(1_796_526_480.75)
    back = datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    assert back == 1_796_526_480
