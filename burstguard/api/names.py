"""Every label, annotation, gate and condition name burstguard writes, in one place.

Names are part of the public contract with cluster operators (they show up in ``kubectl``
output, affinity terms and alerts), so they are constants here and nowhere else.
"""

from typing import Final

GROUP: Final = "burstguard.io"
VERSION: Final = "v1alpha1"
POLICY_PLURAL: Final = "burstpolicies"
POLICY_KIND: Final = "BurstPolicy"

SCHEDULING_GATE: Final = "burstguard.io/paced"
"""Scheduling gate the webhook adds to every pod an Enforce policy selects."""

INTAKE_LABEL: Final = "burstguard.io/intake"
"""Node label ``open``/``closed``; the pacer pins only to open nodes, and pods of policies
that do not pin carry ``NotIn [closed]`` in their required node affinity."""
INTAKE_OPEN: Final = "open"
INTAKE_CLOSED: Final = "closed"

POLICY_ANNOTATION: Final = "burstguard.io/policy"
"""Pod annotation naming the policy that gated the pod (set by the webhook)."""

SUMMARY_ANNOTATION: Final = "burstguard.io/summary"
"""Node annotation: JSON node summary published by the agent (see ``api.nodesummary``)."""

HEADROOM_CONDITION: Final = "BurstguardHeadroom"
"""Node condition published by the agent: True while the node can take more starts."""

PREPARE_REQUEST_ANNOTATION: Final = "burstguard.io/prepare-request"
"""Node annotation: JSON preparation request written by the operator."""

PREPARE_ACK_ANNOTATION: Final = "burstguard.io/prepare-ack"
"""Node annotation: JSON acknowledgement of the last preparation request, written by the agent."""
