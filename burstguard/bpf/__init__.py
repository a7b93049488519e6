"""Running the bpftrace scripts of ``bpf/`` and decoding their JSON output."""
