"""The kopf operator: webhook, pacer, intake steering, shadow mode.

The only layer that imports kopf.
"""
