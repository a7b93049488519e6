"""Reading node signals and history from Prometheus (optional source, DESIGN §2.6)."""
