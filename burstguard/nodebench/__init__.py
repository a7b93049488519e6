"""``burstguard bench node``: a real burst on the real node, unguarded and guarded.

``memory`` prepares the node as a long-running one looks (page cache filled to the high
watermark, an anonymous hog) and keeps the safety stop; ``running`` runs the interleaved
scenarios against the cluster; ``results`` turns what was observed into ``results.json``,
``REPORT.md`` and the plot. Only ``results`` is pure.
"""
