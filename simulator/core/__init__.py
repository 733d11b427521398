"""The event model of one run: its configuration and limits, the cluster, faults, the engine, the
worker loop and the fast path.
"""
