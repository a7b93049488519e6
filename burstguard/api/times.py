"""Kubernetes' timestamp form, written in one place.

The apiserver stores ``metav1.Time`` as RFC 3339 in UTC with second precision
(``2026-12-06T03:08:00Z``); fields with finer precision (a Lease's ``renewTime``,
``metav1.MicroTime``) have their own writer in ``k8s.leases``.
"""

from __future__ import annotations

import datetime


def rfc3339(unix_s: float) -> str:
    """Unix seconds as ``YYYY-MM-DDTHH:MM:SSZ`` (fractions dropped, as ``metav1.Time`` does)."""
    return datetime.datetime.fromtimestamp(unix_s, tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
