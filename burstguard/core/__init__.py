"""Pure decisions: headroom, node state, pacing, preparation planning.

No I/O here; time is an argument.
"""
