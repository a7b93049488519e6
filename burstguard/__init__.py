"""burstguard: keeps container bursts from pushing Kubernetes nodes into memory reclaim.

The package is layered (see ``pyproject.toml`` ``[tool.importlinter]``)::

    cli > lab > operator | agent > k8s | exporter | bpf | promsource | devcluster
        > core > api | procfs > settings

``core`` holds every decision as a pure function of (snapshot, policy, now); the layers above
only gather snapshots and apply plans, so dry-run and enforce run the very same code.
"""

__version__ = "0.1.0"
