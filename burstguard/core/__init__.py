"""Pure decisions: headroom, node state, pacing, preparation planning. No I/O; time is an argument."""
