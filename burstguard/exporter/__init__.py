"""Prometheus metric definitions and the /metrics + /healthz server."""
